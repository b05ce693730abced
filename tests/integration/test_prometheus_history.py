"""Step histories from a real Prometheus: range queries, slice by slice, against known counts.

Prometheus (Debian's package) is loaded with promtool backfill from counters whose
every scrape interval draws its own requests, errors and latencies
(``tests/support/slicedata.py``); the expected count of every slice is the sum of
those draws, computed without PromQL.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from canarypilot.local.prometheus import LocalPrometheus, openmetrics_text
from canarypilot.metrics.history import Slicing, StepQuery
from canarypilot.metrics.prometheus import PrometheusMetrics
from canarypilot.model import StepHistory, Target
from canarypilot.policy import PrometheusSettings, QueryPolicy
from tests.support.slicedata import END, SLICE, STEP_START, Truth, generate, same_buckets

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("promtool") is None, reason="needs Debian's prometheus package"),
]

TYPES = {"http_requests": "counter", "http_request_duration_seconds": "histogram"}


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Truth]]:
    samples, truth = generate()
    workdir = Path(tmp_path_factory.mktemp("prom-history"))
    with LocalPrometheus(workdir, openmetrics=openmetrics_text(samples, TYPES)) as prom:
        yield prom.url, truth


def _provider(url: str, at: float = END + 5) -> PrometheusMetrics:
    return PrometheusMetrics(PrometheusSettings(url=url), QueryPolicy(), now=lambda: at)  # type: ignore[call-arg]


def test_slice_counts_from_range_queries_equal_the_counts_served(loaded: tuple[str, Truth]) -> None:
    url, truth = loaded
    slicing = Slicing(slice_seconds=SLICE, scrape_interval=15, lag_seconds=20)
    steps = [StepQuery(Target("checkout"), 25, STEP_START), StepQuery(Target("search"), 10, END - 300)]

    async def run() -> tuple[dict[Target, StepHistory], int]:
        async with _provider(url) as provider:
            histories = await provider.history_many(steps, slicing=slicing)
            return dict(histories), provider.queries_sent

    histories, sent = asyncio.run(run())
    # One range query per signal (buckets, requests, errors) plus the staleness check, for both services.
    assert sent == 4
    checkout = histories[Target("checkout")]
    assert [s.end for s in checkout.slices] == [STEP_START + SLICE * k for k in range(1, 10)]
    search = histories[Target("search")]
    assert [s.end for s in search.slices] == [END - 240, END - 180, END - 120, END - 60]
    for service, history in (("checkout", checkout), ("search", search)):
        for piece in history.slices:
            for version, counts in (("v1-stable", piece.stable), ("v2-canary", piece.canary)):
                key = (service, version)
                assert counts.requests == pytest.approx(truth.requests[key][piece.end])
                assert counts.errors == pytest.approx(truth.errors[key][piece.end])
                assert same_buckets(counts.buckets, truth.buckets[key][piece.end])
    served = sum(truth.requests[("checkout", "v2-canary")][s.end] for s in checkout.slices)
    assert checkout.snapshot.canary.requests == pytest.approx(served)
    assert checkout.snapshot.age_seconds == pytest.approx(5.0)


def test_the_gate_finds_the_step_start_in_prometheus_from_the_canary_share(loaded: tuple[str, Truth]) -> None:
    url, _ = loaded
    slicing = Slicing(slice_seconds=SLICE, scrape_interval=15, lag_seconds=20, lookback_seconds=1100)

    async def run() -> float:
        async with _provider(url) as provider:
            return (await provider.history(Target("checkout"), weight=25, slicing=slicing)).since

    assert asyncio.run(run()) == STEP_START


def test_coarse_scrapes_and_remote_write_lag_still_give_slices(loaded: tuple[str, Truth]) -> None:
    url, truth = loaded
    # 30 s scrapes and a 20 s lag: a 15 s slice setting is stretched to two scrapes, 60 s.
    slicing = Slicing(slice_seconds=15, scrape_interval=30, lag_seconds=20)

    async def run() -> int:
        async with _provider(url, at=STEP_START + 100) as provider:
            history = await provider.history(Target("checkout"), weight=25, slicing=slicing, since=STEP_START)
            assert history.slices[0].canary.requests == pytest.approx(
                truth.requests[("checkout", "v2-canary")][STEP_START + 60]
            )
            return len(history.slices)

    assert asyncio.run(run()) == 1
