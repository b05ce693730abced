"""``canarypilot replay`` on a real Prometheus loaded with known releases.

The oracle is the live analysis itself: at each instant, the Prometheus
provider's ``history`` (the live range queries, evaluated *at* that instant,
told the step's start by the controller that made the change) and the engine's
``decide``. Replay reads the range once and must give the same verdicts at the
same instants, from the same slices — never one resting on data that was not
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

from canarypilot.analysis import decide
from canarypilot.local.prometheus import LocalPrometheus, openmetrics_text
from canarypilot.metrics.history import Slicing
from canarypilot.metrics.prometheus import PrometheusMetrics
from canarypilot.model import Action, Target
from canarypilot.policy import PrometheusSettings, Settings
from canarypilot.replay.fetch import fetch_slices
from canarypilot.replay.synthetic import TYPES, History
from canarypilot.replay.walk import Instant, Walker
from tests.replay import releases
from tests.replay.releases import ERRORS_AT, LATENCY_AT, RELEASE_END, SPAN, START

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("promtool") is None, reason="needs Debian's prometheus package"),
]

CLI = str(Path(sys.executable).parent / "canarypilot")
SETTINGS = Settings(prometheus={"url": "http://unused"})  # type: ignore[arg-type]
SLICING = Slicing.from_settings(SETTINGS)
LAG = SLICING.lag_seconds


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
            fetched = await fetch_slices(provider, Target(service), start=START, end=end, slicing=SLICING)
        return Walker(fetched.history, SLICING, interval=15.0), fetched.queries

    return asyncio.run(go())


def _live(url: str, service: str, instants: list[float]) -> list[tuple[float, float, str, float, float]]:
    """What the live analysis gave at each instant: the provider asked then, the engine."""

    async def go() -> list[tuple[float, float, str, float, float]]:
        out = []
        async with PrometheusMetrics(PrometheusSettings(url=url)) as provider:  # type: ignore[call-arg]
            for at in instants:
                change = releases.change_before(at)
                if change is None or change[1] <= 0:
                    continue
                since, weight = change
                history = await provider.history(
                    Target(service), weight=weight, slicing=SLICING, since=since, at=at
                )
                if not history.slices:
                    continue
                verdict = decide(history, SETTINGS)
                out.append(
                    (at, weight, verdict.action.value, history.slices[0].start, history.slices[-1].end)
                )
        return out

    return asyncio.run(go())


@pytest.mark.parametrize("service", ["healthy", "latency", "errors", "gap"])
def test_same_verdicts_at_the_same_instants_as_the_live_analysis(
    prometheus: LocalPrometheus, service: str
) -> None:
    walker, queries = _walker(prometheus.url, service)
    assert queries == 5, "one range query per signal, one staleness query and one scrape-interval probe"
    replayed = walker.run(SETTINGS)
    assert replayed, "the release was replayed"
    got = [
        (i.at, i.weight, i.verdict.action.value, walker.history_at(i.at).slices[0].start, i.seen_until)
        for i in replayed
    ]  # type: ignore[union-attr]
    assert got == _live(prometheus.url, service, walker.instants())


def test_verdicts_find_the_known_regressions(prometheus: LocalPrometheus) -> None:
    def first_rollback(service: str) -> Instant | None:
        walker, _ = _walker(prometheus.url, service)
        return next((i for i in walker.run(SETTINGS) if i.verdict.action is Action.ROLLBACK), None)

    assert first_rollback("healthy") is None, "warm-up spikes and a counter reset are not a regression"
    assert first_rollback("gap") is None
    # Caught after the onset and before the recorded release ended (at 1500 s): how soon is
    # the engine's business (docs/decision-model.md), the replay only has to show it.
    latency = first_rollback("latency")
    assert latency is not None and START + LATENCY_AT < latency.at < START + RELEASE_END
    errors = first_rollback("errors")
    assert errors is not None and START + ERRORS_AT < errors.at < START + RELEASE_END


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
    assert report["queries"] == 5
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


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--service", "ghost", "--from", str(START), "--to", str(START + SPAN)], "no data for 'v2-canary'"),
        (
            ["--service", "latency", "--from", "yesterday", "--to", str(START)],
            "--from 'yesterday' is neither",
        ),
        (["--service", 'bad"name', "--from", str(START), "--to", str(START + SPAN)], "invalid service name"),
    ],
)
def test_cli_errors_are_one_line_with_exit_2(
    prometheus: LocalPrometheus, args: list[str], message: str
) -> None:
    done = subprocess.run(
        [CLI, "replay", "--prometheus", prometheus.url, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
