"""``canarypilot analyze`` against a real Prometheus loaded with known data.

One Prometheus (Debian's package, on a free loopback port) holds one service per
scenario, backfilled with promtool. For each, the test derives what the decision
must be from the generated data alone: p99 by classic-histogram interpolation of
the bucket rates, error rates from the counters, the weight from the article's
formula (transcribed here, not imported), and compares it with what the product
decides from Prometheus' answers.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from canarypilot import Settings, Status, analyze
from canarypilot.local.prometheus import LocalPrometheus
from tests.support.promdata import END, ServiceData, Traffic, openmetrics

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("promtool") is None, reason="needs Debian's prometheus package"),
]

WINDOW = 300.0
FAST = ((0.04, 0.97), (0.2, 0.03))  # p99 inside (0.1, 0.25]
SLIGHTLY_SLOWER = ((0.04, 0.965), (0.2, 0.035))  # a few percent slower p99
SLOW = ((0.04, 0.90), (0.6, 0.10))  # p99 inside (0.5, 1.0]: far beyond +15%
FASTER = ((0.02, 0.98), (0.08, 0.02))  # p99 inside (0.05, 0.1]
STABLE = Traffic("v1-stable", rps=20, latency=FAST, error_fraction=0.001)

SCENARIOS: dict[str, tuple[Traffic, ...]] = {
    "healthy": (STABLE, Traffic("v2-canary", rps=5, latency=SLIGHTLY_SLOWER, error_fraction=0.002)),
    "p99-regression": (STABLE, Traffic("v2-canary", rps=5, latency=SLOW)),
    "error-regression": (STABLE, Traffic("v2-canary", rps=5, latency=FAST, error_fraction=0.06)),
    "no-canary-traffic": (STABLE, Traffic("v2-canary", rps=0, latency=FAST)),
    "no-canary-series": (STABLE,),
    "little-canary-traffic": (STABLE, Traffic("v2-canary", rps=0.2, latency=FAST)),
    "faster-canary": (STABLE, Traffic("v2-canary", rps=5, latency=FASTER)),
}
DATA = {name: ServiceData(name, versions) for name, versions in SCENARIOS.items()}


def reference_weight(latency_delta: float, error_delta: float) -> float:
    """The article's formula with the clamp, rounding halves away from zero."""
    safety = max(0.1, math.exp(-10 * latency_delta) * max(0.2, 1 - 20 * error_delta))
    raw = 5 + safety * 95
    rounded = math.floor(raw * 10 + 0.5) / 10
    return min(100.0, max(5.0, rounded))


def expected(name: str) -> tuple[Status, float | None]:
    """The decision the data calls for, with the default policy."""
    data = DATA[name]
    versions = {t.version for t in data.versions}
    if "v2-canary" not in versions or data.requests("v2-canary", WINDOW) < 100:
        return Status.HOLD, None
    p99_stable = data.quantile("v1-stable", 0.99, WINDOW)
    p99_canary = data.quantile("v2-canary", 0.99, WINDOW)
    latency_delta = (p99_canary - p99_stable) / p99_stable
    error_delta = data.error_rate("v2-canary", WINDOW) - data.error_rate("v1-stable", WINDOW)
    if latency_delta > 0.15 or error_delta > 0.02:
        return Status.ROLLBACK, 0.0
    return Status.PROCEED, reference_weight(latency_delta, error_delta)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPrometheus]:
    workdir = tmp_path_factory.mktemp("prometheus")
    with LocalPrometheus(workdir, openmetrics=openmetrics(*DATA.values())) as prom:
        yield prom


def settings(url: str) -> Settings:
    return Settings().merged({"prometheus": {"url": url, "retries": 0}})


def test_the_scenarios_cover_every_outcome() -> None:
    outcomes = {expected(name)[0] for name in SCENARIOS}
    assert outcomes == {Status.PROCEED, Status.HOLD, Status.ROLLBACK}
    healthy = expected("healthy")[1]
    assert healthy is not None and 5 < healthy < 100, "the healthy canary must exercise interpolation"


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_decision_matches_the_data(prometheus: LocalPrometheus, name: str) -> None:
    decision = await analyze(name, settings=settings(prometheus.url), at=END)
    status, weight = expected(name)
    assert decision.status is status, decision.reasons
    assert decision.weight == weight, decision.reasons


@pytest.mark.parametrize("name", ["healthy", "p99-regression", "error-regression", "faster-canary"])
async def test_measured_signals_match_the_data(prometheus: LocalPrometheus, name: str) -> None:
    decision = await analyze(name, settings=settings(prometheus.url), at=END)
    data = DATA[name]
    for stats in (decision.stable, decision.canary):
        assert stats.requests == pytest.approx(data.requests(stats.version, WINDOW))
        assert stats.error_rate == pytest.approx(data.error_rate(stats.version, WINDOW))
        assert stats.p99_seconds == pytest.approx(data.quantile(stats.version, 0.99, WINDOW))


async def test_rollback_reasons_name_the_violated_signal(prometheus: LocalPrometheus) -> None:
    latency = await analyze("p99-regression", settings=settings(prometheus.url), at=END)
    errors = await analyze("error-regression", settings=settings(prometheus.url), at=END)
    assert [v.kind.value for v in latency.violations] == ["latency"]
    assert [v.kind.value for v in errors.violations] == ["errors"]


async def test_too_little_traffic_says_how_much_there_was(prometheus: LocalPrometheus) -> None:
    decision = await analyze("little-canary-traffic", settings=settings(prometheus.url), at=END)
    assert any("served 60 requests" in r and "fewer than 100" in r for r in decision.reasons)


async def test_data_older_than_the_staleness_limit_holds(prometheus: LocalPrometheus) -> None:
    # Ten minutes after the last sample: the 5m window is empty, the series are gone.
    decision = await analyze("healthy", settings=settings(prometheus.url), at=END + 600)
    assert decision.status is Status.HOLD


async def test_a_shorter_window_from_the_config_is_used(prometheus: LocalPrometheus) -> None:
    tuned = settings(prometheus.url).merged({"query": {"window": "2m"}})
    decision = await analyze("healthy", settings=tuned, at=END)
    assert decision.canary.requests == pytest.approx(DATA["healthy"].requests("v2-canary", 120))


@pytest.mark.parametrize(
    ("name", "code"), [("healthy", 0), ("little-canary-traffic", 3), ("p99-regression", 4)]
)
def test_command_exit_code_and_json(prometheus: LocalPrometheus, name: str, code: int) -> None:
    run = subprocess.run(
        [
            str(Path(sys.executable).parent / "canarypilot"),
            "analyze",
            "--prometheus",
            prometheus.url,
            "--service",
            name,
            "--at",
            str(END),
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(Path.home())},
    )
    assert run.returncode == code, run.stderr
    body = json.loads(run.stdout)
    status, weight = expected(name)
    assert body["status"] == status.value and body["weight"] == weight
    assert run.stderr == ""


def test_the_worked_example_reaches_both_expected_decisions() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "canarypilot.local.example"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "checkout   proceed   as expected" in run.stdout
    assert "payments   rollback  as expected" in run.stdout
    assert "PROCEED  weight" in run.stdout and "ROLLBACK  weight 0%" in run.stdout
