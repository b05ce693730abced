"""The embedded scrape provider, against scripted /metrics answers in fake time.

Each test drives rounds by hand (``scrape_once``) with a ``FakeClock``; the pods
are an ``httpx.MockTransport`` whose counters grow with the fake clock, so the
expected numbers follow from the rates given to each pod.
"""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest

from canarypilot import ConfigError, FakeClock, Target
from canarypilot.metrics.base import BatchMetricsProvider
from canarypilot.metrics.promql import is_stale
from canarypilot.metrics.scrape import ScrapeMetrics, ScrapeSettings

TARGET = Target("checkout")
START = 1_700_000_000.0


class Pods:
    """Fake pods: ``rps`` requests per second each, 2% of them 5xx, all within 0.1s."""

    def __init__(self, clock: FakeClock, rps: dict[str, float]) -> None:
        self.clock = clock
        self.rps = dict(rps)
        self.down: set[str] = set()
        self.bodies: dict[str, bytes] = {}
        self.requests = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        host = request.url.host
        if host in self.down:
            raise httpx.ConnectError("connection refused", request=request)
        if host in self.bodies:
            return httpx.Response(200, content=self.bodies[host])
        n = self.rps[host] * (self.clock.now() - START)
        text = (
            "# TYPE http_requests_total counter\n"
            f'http_requests_total{{code="200",version="bogus"}} {n * 0.98}\n'
            f'http_requests_total{{code="503"}} {n * 0.02}\n'
            "# TYPE http_request_duration_seconds histogram\n"
            f'http_request_duration_seconds_bucket{{le="0.05"}} {n * 0.5}\n'
            f'http_request_duration_seconds_bucket{{le="0.1"}} {n}\n'
            f'http_request_duration_seconds_bucket{{le="+Inf"}} {n}\n'
        )
        return httpx.Response(200, text=text, headers={"content-type": "text/plain; version=0.0.4"})


def provider(pods: Pods, clock: FakeClock, **settings: object) -> ScrapeMetrics:
    targets = {"v1-stable": ["s1:8080", "s2:8080"], "v2-canary": ["c1:8080"]}
    return ScrapeMetrics(
        targets,
        ScrapeSettings(**settings),  # type: ignore[arg-type]
        service="checkout",
        clock=clock,
        transport=httpx.MockTransport(pods.handler),
    )


async def run_rounds(metrics: ScrapeMetrics, clock: FakeClock, rounds: int, every: float = 15.0) -> None:
    for _ in range(rounds):
        await metrics.scrape_once()
        clock.advance(every)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


async def test_pods_of_a_version_are_summed(clock: FakeClock) -> None:
    pods = Pods(clock, {"s1": 10, "s2": 30, "c1": 4})
    metrics = provider(pods, clock)
    await run_rounds(metrics, clock, 25)
    snap = await metrics.snapshot(TARGET)
    await metrics.aclose()
    assert snap.stable.requests == pytest.approx(40 * 300, rel=1e-9)
    assert snap.canary.requests == pytest.approx(4 * 300, rel=1e-9)
    assert snap.canary.error_rate == pytest.approx(0.02)
    assert snap.stable.p99_seconds == pytest.approx(0.05 + 0.05 * (0.99 - 0.5) / 0.5)
    assert snap.age_seconds == pytest.approx(15)  # last round ran one interval before "now"
    assert isinstance(metrics, BatchMetricsProvider)


async def test_target_labels_win_over_scraped_ones(clock: FakeClock) -> None:
    pods = Pods(clock, {"s1": 1, "s2": 1, "c1": 1})
    metrics = provider(pods, clock)
    await metrics.scrape_once()
    await metrics.aclose()
    labels = [dict(labels) for labels, _ in metrics.store.series("http_requests_total")]
    pod = next(lbl for lbl in labels if lbl["instance"] == "s1:8080" and lbl["code"] == "200")
    assert pod == {
        "code": "200",
        "exported_version": "bogus",
        "version": "v1-stable",
        "instance": "s1:8080",
        "job": "checkout",
    }


async def test_a_pod_that_stops_answering_goes_stale_not_zero(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    pods = Pods(clock, {"s1": 10, "s2": 10, "c1": 4})
    metrics = provider(pods, clock)
    await run_rounds(metrics, clock, 25)
    pods.down.add("c1")
    with caplog.at_level(logging.WARNING, logger="canarypilot.metrics.scrape"):
        await run_rounds(metrics, clock, 3)
    snap = await metrics.snapshot(TARGET)
    # The canary's samples from before the outage still count over the window...
    assert snap.canary.requests is not None and 0 < snap.canary.requests < 4 * 300
    # ...but its series are stale: they no longer hold back the age of the newest sample,
    # and an instant lookup finds nothing for them (it would find the last value without a marker).
    assert snap.age_seconds == pytest.approx(15)
    canary = [
        s for labels, s in metrics.store.series("http_requests_total") if labels["instance"] == "c1:8080"
    ]
    assert canary and all(is_stale(samples[-1][1]) for samples in canary)
    # The failures are counted and logged once.
    health = next(t for t in metrics.targets if t.instance == "c1:8080")
    assert (health.up, health.failures, metrics.failures) == (False, 3, 3)
    assert "ConnectError" in (health.last_error or "")
    assert len([r for r in caplog.records if "c1:8080" in r.getMessage()]) == 1
    up = {labels["instance"]: samples[-1][1] for labels, samples in metrics.store.series("up")}
    assert up == {"s1:8080": 1.0, "s2:8080": 1.0, "c1:8080": 0.0}
    assert await metrics.is_online()
    # Once the window has passed the outage, the canary has no data at all: hold, never zero.
    await run_rounds(metrics, clock, 21)
    later = await metrics.snapshot(TARGET)
    await metrics.aclose()
    assert later.canary.requests is None
    assert later.stable.requests == pytest.approx(20 * 300, rel=1e-9)


async def test_recovered_pod_counts_again(clock: FakeClock) -> None:
    pods = Pods(clock, {"s1": 10, "s2": 10, "c1": 4})
    metrics = provider(pods, clock)
    pods.down.add("c1")
    await run_rounds(metrics, clock, 2)
    pods.down.clear()
    await run_rounds(metrics, clock, 25)
    snap = await metrics.snapshot(TARGET)
    await metrics.aclose()
    assert snap.canary.requests == pytest.approx(4 * 300, rel=1e-9)


@pytest.mark.parametrize(
    ("body", "problem"),
    [(b"x" * 2048, "larger than 1024 bytes"), (b"http_requests_total{code=200 1\n", "text format"),
     (b"\xff\xfe bad utf-8", "text format")],
    ids=["too-large", "malformed", "not-utf8"],
)  # fmt: skip
async def test_bad_answers_are_failed_scrapes(clock: FakeClock, body: bytes, problem: str) -> None:
    pods = Pods(clock, {"s1": 1, "s2": 1, "c1": 1})
    pods.bodies["c1"] = body
    metrics = provider(pods, clock, max_body_bytes=1024)
    await metrics.scrape_once()
    await metrics.aclose()
    health = next(t for t in metrics.targets if t.instance == "c1:8080")
    assert health.failures == 1
    assert problem in (health.last_error or "")


async def test_series_limit_bounds_memory(clock: FakeClock) -> None:
    pods = Pods(clock, {"s1": 1, "s2": 1, "c1": 1})
    pods.bodies["c1"] = "".join(f'cardinality_bomb{{id="{i}"}} 1\n' for i in range(500)).encode()
    metrics = provider(pods, clock, max_series=100)
    await metrics.scrape_once()
    await metrics.aclose()
    assert len(metrics.store) == 100
    assert metrics.store.series_refused > 400


async def test_not_online_before_any_answer(clock: FakeClock) -> None:
    pods = Pods(clock, {"s1": 1, "s2": 1, "c1": 1})
    pods.down.update({"s1", "s2", "c1"})
    metrics = provider(pods, clock)
    assert not await metrics.is_online()
    await metrics.scrape_once()
    assert not await metrics.is_online()
    snap = await metrics.snapshot(TARGET)
    await metrics.aclose()
    assert snap.stable.requests is None and snap.age_seconds is None


async def test_context_manager_runs_the_loop_and_stops_it(clock: FakeClock) -> None:
    pods = Pods(clock, {"s1": 1, "s2": 1, "c1": 1})
    async with provider(pods, clock, interval_seconds=15) as metrics:
        for _ in range(50):
            await asyncio.sleep(0)
        assert metrics.rounds >= 2  # the fake clock lets rounds follow each other at once
    seen = pods.requests
    await asyncio.sleep(0)
    assert pods.requests == seen  # nothing scrapes after the block
    assert clock.slept and all(s == pytest.approx(15) for s in clock.slept)


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        ({}, "no scrape targets"),
        ({"v1-stable": []}, "one or more"),
        ({"v1-stable": "host:1"}, "list"),
        ({"bad version!": ["h:1"]}, "invalid version"),
        ({"v1-stable": ["ftp://h/metrics"]}, "not host:port"),
        ({"v1-stable": ["http://u:p@h:1/metrics"]}, "credentials"),
        ({"v1-stable": ["h:1", "http://h:1/metrics"]}, "listed twice"),
    ],
)
def test_bad_targets_are_config_errors(targets: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ScrapeMetrics(targets)  # type: ignore[arg-type]


def test_retention_must_cover_the_window() -> None:
    with pytest.raises(ConfigError, match="retention"):
        ScrapeMetrics({"v1-stable": ["h:1"]}, ScrapeSettings(retention_seconds=60))  # type: ignore[call-arg]
