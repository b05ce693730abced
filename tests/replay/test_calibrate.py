"""``canarypilot calibrate`` recovers a service's known parameters from its Prometheus history.

The history is made by the simulator's own ``World`` from a scenario whose
parameters we chose (rate with a two-hour dip, log-normal latency, error rate,
per-tick jitter, stalls), loaded into a real Prometheus with promtool, and
fitted back through the HTTP API. Tolerances, stated once here:

* rate within 3 %, each hour's share of the daily shape within 5 %;
* median and p99 within 10 % (one histogram of 11 real buckets, 6 hours);
* error rate within 10 %;
* jitter within 25 % (its estimate comes from slice-to-slice changes);
* stalls per hour within 50 % (a Poisson count of ~18), their factor within 35 %.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from canarypilot.local.prometheus import LocalPrometheus, openmetrics_text
from canarypilot.metrics.prometheus import PrometheusMetrics
from canarypilot.policy import PrometheusSettings
from canarypilot.replay.calibrate import fit
from canarypilot.replay.fetch import fetch_recording
from canarypilot.replay.synthetic import STABLE, TYPES, simulate_history
from canarypilot.sim.bench import load_suite
from canarypilot.sim.scenario import parse_scenario

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("promtool") is None, reason="needs Debian's prometheus package"),
]

CLI = str(Path(sys.executable).parent / "canarypilot")
START = 1_700_006_400.0  # 00:00 UTC, so the dip falls on known hours of the day
HOURS = 6
KNOWN = {
    "rps": 40.0,
    "median_ms": 40.0,
    "p99_ms": 180.0,
    "error_rate": 0.005,
    "latency_jitter": 0.12,
    "spikes_per_hour": 6.0,  # on one version at a time: 3 per hour on stable
    "spike_factor": 4.0,
}
MODEL = parse_scenario(
    {
        "name": "known",
        "duration_seconds": HOURS * 3600,
        "traffic": {"rps": KNOWN["rps"]},
        "stable": {
            "latency": {"median_ms": KNOWN["median_ms"], "p99_ms": KNOWN["p99_ms"]},
            "error_rate": KNOWN["error_rate"],
        },
        "monitoring": {
            "scrape_interval_seconds": 15,
            "buckets_ms": [5, 10, 25, 50, 75, 100, 250, 500, 1000, 2500, 5000],
        },
        "events": [
            {"type": "traffic_dip", "at_seconds": 2 * 3600, "duration_seconds": 2 * 3600, "factor": 0.5},
            {
                "type": "noise",
                "latency_jitter": KNOWN["latency_jitter"],
                "spikes_per_hour": KNOWN["spikes_per_hour"],
                "spike_factor": KNOWN["spike_factor"],
                "spike_seconds": 30,
            },
        ],
    }
)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> object:
    history = simulate_history(
        MODEL, service="checkout", start=START, seconds=HOURS * 3600, weight=lambda t: 0.0, seed=7
    )
    text = openmetrics_text(history.samples, TYPES)
    with LocalPrometheus(tmp_path_factory.mktemp("prom"), openmetrics=text) as prom:
        yield prom


def _fit(url: str) -> object:
    import asyncio

    async def go() -> object:
        async with PrometheusMetrics(PrometheusSettings(url=url)) as provider:  # type: ignore[call-arg]
            fetched = await fetch_recording(
                provider, "checkout", [STABLE], start=START, end=START + HOURS * 3600
            )
            assert fetched.queries == 3, "one round trip per signal"
            return fit(fetched.recording, STABLE)

    return asyncio.run(go())


def test_fit_recovers_the_known_parameters(prometheus: LocalPrometheus) -> None:
    got = _fit(prometheus.url)
    mean_rps = KNOWN["rps"] * (HOURS - 1) / HOURS  # two hours at half the rate
    assert got.rps == pytest.approx(mean_rps, rel=0.03)
    for hour in range(HOURS):
        expected = (0.5 if 2 <= hour < 4 else 1.0) * KNOWN["rps"] / mean_rps
        assert got.daily_shape[hour] == pytest.approx(expected, rel=0.05), hour
    assert all(s is None for s in got.daily_shape[HOURS:])
    assert got.median_ms == pytest.approx(KNOWN["median_ms"], rel=0.10)
    assert got.p99_ms == pytest.approx(KNOWN["p99_ms"], rel=0.10)
    assert got.error_rate == pytest.approx(KNOWN["error_rate"], rel=0.10)
    assert got.latency_jitter == pytest.approx(KNOWN["latency_jitter"], rel=0.25)
    assert 2 * got.stalls_per_hour == pytest.approx(KNOWN["spikes_per_hour"], rel=0.5)
    assert got.stall_factor == pytest.approx(KNOWN["spike_factor"], rel=0.35)
    assert got.bounds_ms == (5, 10, 25, 50, 75, 100, 250, 500, 1000, 2500, 5000)


def test_cli_writes_a_suite_the_bench_accepts(prometheus: LocalPrometheus, tmp_path: Path) -> None:
    out = tmp_path / "suite"
    argv = [
        CLI, "calibrate", "--prometheus", prometheus.url,
        "--service", "checkout", "--from", str(START), "--to", str(START + HOURS * 3600),
        "--variants", "healthy,p99-25,errors-2pts,capacity-knee,quiet-hour", "-o", str(out),
        "--format", "json",
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["fit"]["p99_ms"] == pytest.approx(KNOWN["p99_ms"], rel=0.10)
    suite = {s.name: s for s in load_suite(out)}
    assert set(suite) == {
        f"checkout-{v}" for v in ("healthy", "p99-25", "errors-2pts", "capacity-knee", "quiet-hour")
    }
    assert suite["checkout-healthy"].expect == "promote"
    assert suite["checkout-p99-25"].expect == "rollback"
    assert suite["checkout-capacity-knee"].expect == "rollback"
    assert suite["checkout-quiet-hour"].rps == pytest.approx(KNOWN["rps"] / 2, rel=0.05)
    assert suite["checkout-healthy"].monitoring.buckets_seconds[-1] == pytest.approx(5.0)


def test_cli_refuses_a_range_without_the_version(prometheus: LocalPrometheus, tmp_path: Path) -> None:
    argv = [
        CLI, "calibrate", "--prometheus", prometheus.url,
        "--service", "checkout", "--stable-version", "v0-gone", "--from", str(START),
        "--to", str(START + 3600), "-o", str(tmp_path / "x.yaml"),
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "no data for version 'v0-gone'" in done.stderr
    assert "Traceback" not in done.stderr
