"""``canarypilot replay`` on a real Prometheus loaded with known releases.

The oracle (``releases.truth``) is what a controller that set the weights
itself would have held at each instant, built from the generator's own counts
and the known schedule — no step detection, no Prometheus. Replay must give the
same verdicts at the same instants, and never one resting on data that was not
yet scraped: cutting the range at an instant changes nothing before it.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from canarypilot.local.prometheus import LocalPrometheus, openmetrics_text
from canarypilot.metrics.prometheus import PrometheusMetrics
from canarypilot.model import Action, Target
from canarypilot.policy import PrometheusSettings, Settings
from canarypilot.replay.fetch import fetch_recording
from canarypilot.replay.synthetic import CANARY, STABLE, TYPES, History
from canarypilot.replay.walk import Instant, Walker, step_verdict
from tests.replay import releases
from tests.replay.releases import ERRORS_AT, LATENCY_AT, SPAN, START

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("promtool") is None, reason="needs Debian's prometheus package"),
]

CLI = str(Path(sys.executable).parent / "canarypilot")
SETTINGS = Settings()  # type: ignore[call-arg]
LAG = SETTINGS.rollout.scrape_lag_seconds


@pytest.fixture(scope="module")
def recorded() -> dict[str, History]:
    return releases.recorded()


@pytest.fixture(scope="module")
def prometheus(
    recorded: dict[str, History], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalPrometheus]:
    samples = [s for h in recorded.values() for s in h.samples]
    with LocalPrometheus(
        tmp_path_factory.mktemp("prom"), openmetrics=openmetrics_text(samples, TYPES)
    ) as prom:
        yield prom


def _walker(url: str, service: str, *, end: float = START + SPAN) -> tuple[Walker, int]:
    async def go() -> tuple[Walker, int]:
        async with PrometheusMetrics(PrometheusSettings(url=url)) as provider:  # type: ignore[call-arg]
            fetched = await fetch_recording(provider, service, [CANARY, STABLE], start=START, end=end)
        walker = Walker(fetched.recording, Target(service), lag=LAG, interval=15.0)
        return walker, fetched.queries

    return asyncio.run(go())


@pytest.mark.parametrize("service", ["healthy", "latency", "errors", "gap"])
def test_same_verdicts_at_the_same_instants_as_the_live_controller(
    prometheus: LocalPrometheus, recorded: dict[str, History], service: str
) -> None:
    walker, queries = _walker(prometheus.url, service)
    assert queries == 3
    replayed = walker.run(SETTINGS)
    assert replayed, "the release was replayed"
    live = []
    for at in walker.instants():
        history = releases.truth(recorded[service], at, LAG)
        if history is not None and history.slices:
            live.append((at, history.since, history.weight, step_verdict(history, SETTINGS).action))
    got = [(i.at, i.since, i.weight, i.verdict.action) for i in replayed]
    assert got == live


def test_verdicts_find_the_known_regressions(prometheus: LocalPrometheus) -> None:
    def first_rollback(service: str) -> Instant | None:
        walker, _ = _walker(prometheus.url, service)
        return next((i for i in walker.run(SETTINGS) if i.verdict.action is Action.ROLLBACK), None)

    assert first_rollback("healthy") is None, "warm-up spikes and a counter reset are not a regression"
    assert first_rollback("gap") is None
    latency = first_rollback("latency")
    assert latency is not None and START + LATENCY_AT < latency.at < START + LATENCY_AT + 180
    errors = first_rollback("errors")
    assert errors is not None and START + ERRORS_AT < errors.at < START + ERRORS_AT + 120


@pytest.mark.parametrize("service", ["latency", "gap"])
def test_never_a_verdict_from_data_not_yet_scraped(prometheus: LocalPrometheus, service: str) -> None:
    full, _ = _walker(prometheus.url, service)
    everything = full.run(SETTINGS)
    assert all(i.seen_until <= i.at - LAG for i in everything)
    cut = START + 1100.0
    early, _ = _walker(prometheus.url, service, end=cut)
    before = [(i.at, i.weight, i.verdict.action) for i in everything if i.at <= cut]
    assert [(i.at, i.weight, i.verdict.action) for i in early.run(SETTINGS) if i.at <= cut] == before


def test_cli_compares_policies_side_by_side(prometheus: LocalPrometheus, tmp_path: Path) -> None:
    lenient = tmp_path / "lenient.yaml"
    lenient.write_text("slo:\n  max_latency_delta: 2.0\n")
    argv = [
        CLI, "replay", "--prometheus", prometheus.url, "--service", "latency",
        "--from", str(START), "--to", str(START + SPAN), "--config", str(lenient), "--config", "default",
        "--format", "json",
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["queries"] == 3
    by_name = {p["config"]: p for p in report["policies"]}
    assert by_name["default"]["releases"][0]["first_rollback"] is not None
    assert by_name["default"]["releases"][0]["spared_bad_requests"] > 0
    assert by_name[str(lenient)]["releases"][0]["first_rollback"] is None
    assert [s["weight"] for s in report["releases"][0]["steps"]] == [5, 10, 20, 50]


def test_cli_html_report_and_table(prometheus: LocalPrometheus, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    argv = [
        CLI, "replay", "--prometheus", prometheus.url, "--service", "errors",
        "--from", str(START), "--to", str(START + SPAN), "--format", "html", "--output", str(out),
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr
    page = out.read_text()
    assert "<td>rollback</td>" in page
    report = (tmp_path / "report-0-0.html").read_text()
    assert "weight over time" in report and "rollback" in report
    assert (tmp_path / "report-0-0-weight.png").stat().st_size > 1000
    table = subprocess.run(
        [*argv[:-4], "--format", "table"], capture_output=True, text=True, timeout=120, check=False
    )
    assert table.returncode == 0, table.stderr
    assert "ROLLBACK" in table.stdout.upper()
