"""The scrape interval measured from the data: a 30 s scrape is read right without being told.

Against a real Prometheus holding samples 30 s apart (``tests/service/live``): with the
interval unset, the provider measures 30 s from the request counter's raw samples and
cuts 60 s slices, each with two samples of every series; told 15 s (the old default),
30 s slices hold one sample each and count nothing. The measurement is remembered.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from canarypilot.local.prometheus import LocalPrometheus
from canarypilot.metrics.history import Slicing
from canarypilot.metrics.prometheus import PrometheusMetrics
from canarypilot.metrics.prometheus_history import scrape_interval
from canarypilot.model import StepHistory, Target
from canarypilot.policy import Settings
from tests.service.live import live_prometheus

pytestmark = pytest.mark.integration

HEALTHY = Target("healthy", "v2-canary", "v1-stable")


@pytest.fixture(scope="module")
def prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPrometheus]:
    with live_prometheus(Path(tmp_path_factory.mktemp("prom"))) as running:
        yield running


def settings(prom: LocalPrometheus, **query: float) -> Settings:
    return Settings.model_validate({"prometheus": {"url": prom.url}, "query": query})


def counted(history: StepHistory) -> float:
    return sum(s.canary.requests or 0.0 for s in history.slices)


async def test_an_unset_interval_is_measured_and_the_slices_count_traffic(prom: LocalPrometheus) -> None:
    measured = settings(prom)
    slicing = Slicing.from_settings(measured)
    assert slicing.measure_interval
    async with PrometheusMetrics(measured.prometheus, measured.query) as provider:
        history = await provider.history(HEALTHY, weight=20, slicing=slicing)
    assert history.scrape_interval == 30.0
    slices = history.slices
    assert slices and all(s.end - s.start == 60.0 for s in slices)
    # 5 req/s of canary: about 300 requests counted in each 60 s slice.
    assert counted(history) == pytest.approx(300.0 * len(slices), rel=0.1)

    # Told the wrong interval, as before: slices of one sample count nothing.
    told = settings(prom, scrape_interval_seconds=15.0)
    wrong = Slicing.from_settings(told)
    assert not wrong.measure_interval
    async with PrometheusMetrics(told.prometheus, told.query) as provider:
        blind = await provider.history(HEALTHY, weight=20, slicing=wrong)
    assert counted(blind) < 0.1 * counted(history)


async def test_the_measurement_is_remembered(prom: LocalPrometheus) -> None:
    measured = settings(prom)
    slicing = Slicing.from_settings(measured)
    async with PrometheusMetrics(measured.prometheus, measured.query) as provider:
        await provider.history(HEALTHY, weight=20, slicing=slicing)
        first = provider.queries_sent
        await provider.history(HEALTHY, weight=20, slicing=slicing)
    # Four queries (three ranges and the staleness) the first time plus the probe; four after.
    assert (first, provider.queries_sent - first) == (5, 4)


def test_the_slowest_series_sets_the_interval() -> None:
    fast = [(float(t), 1.0) for t in range(0, 300, 15)]
    slow = [(float(t), 1.0) for t in range(0, 300, 60)]
    assert scrape_interval([fast]) == 15.0
    assert scrape_interval([fast, slow]) == 60.0
    # One missed scrape does not move a median.
    gappy = [p for p in fast if p[0] != 150.0]
    assert scrape_interval([gappy]) == 15.0
    assert scrape_interval([[(0.0, 1.0)]]) is None


async def test_a_full_memory_starts_afresh_without_losing_the_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past ``MAX_MEASURED`` services the memory is cleared, but the services of the batch
    being measured keep theirs (a batch of one fresh and one new service once crashed here)."""
    from canarypilot.metrics import prometheus_history
    from canarypilot.metrics.history import StepQuery
    from canarypilot.policy import QueryPolicy

    class Answers:
        query = QueryPolicy()
        measured_intervals: dict[str, tuple[float | None, float]] = {}
        asked = 0

        async def samples(self, text: str, *, at: float) -> object:
            self.asked += 1
            values = [[t, "1"] for t in range(0, 300, 30)]
            result = [{"metric": {"job": job}, "values": values} for job in ("a", "b") if f'"{job}"' in text]
            return {"data": {"resultType": "matrix", "result": result}}

    monkeypatch.setattr(prometheus_history, "MAX_MEASURED", 2)
    answers = Answers()
    answers.measured_intervals = {"a": (30.0, 100.0), "x": (15.0, 100.0), "y": (15.0, 100.0)}
    steps = [StepQuery(Target("a")), StepQuery(Target("b"))]
    sliced = await prometheus_history.measure(answers, Slicing(measure_interval=True), steps, 110.0)  # type: ignore[arg-type]
    assert sliced.scrape_interval == 30.0 and not sliced.measure_interval
    assert answers.asked == 1 and set(answers.measured_intervals) == {"a", "b"}
