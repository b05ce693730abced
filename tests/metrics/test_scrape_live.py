"""The scrape provider against real pods, side by side with a real Prometheus scraping them.

Three HTTP servers on loopback play the pods (two of the stable version, one
canary); their counters grow linearly with wall time, so every correct answer
is known in advance. ``ScrapeMetrics`` and a Prometheus server scrape the same
pods at the same time; their snapshots must agree with each other and with the
known rates, also after the canary pod dies (its series go stale in both).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from canarypilot.clock import SystemClock
from canarypilot.local.processes import free_port
from canarypilot.local.prometheus import LocalPrometheus, ScrapeJob
from canarypilot.metrics.prometheus import PrometheusMetrics
from canarypilot.metrics.scrape import ScrapeMetrics
from canarypilot.model import Snapshot, Target
from canarypilot.policy import PrometheusSettings, QueryPolicy, ScrapeSettings
from tests.support.promdata import histogram_quantile

pytestmark = pytest.mark.integration

TARGET = Target("checkout")
WINDOW = 8
#: Cumulative share of requests at or below each bound: p99 lies in (0.1, 0.25].
SHARES = ((0.05, 0.6), (0.1, 0.9), (0.25, 0.995), (float("inf"), 1.0))
ERRORS = {"v1-stable": 0.01, "v2-canary": 0.04}


class Pod:
    """A /metrics endpoint whose counters grow at ``rps`` per second of wall time."""

    def __init__(self, version: str, rps: float) -> None:
        self.version, self.rps, self.born = version, rps, time.time() - 60
        pod = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                body = pod.metrics().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.address = f"127.0.0.1:{self.server.server_address[1]}"

    def metrics(self) -> str:
        n = self.rps * (time.time() - self.born)
        failed = ERRORS[self.version]
        lines = [
            "# TYPE http_requests_total counter",
            f'http_requests_total{{code="200"}} {n * (1 - failed)}',
            f'http_requests_total{{code="500"}} {n * failed}',
            "# TYPE http_request_duration_seconds histogram",
        ]
        for bound, share in SHARES:
            le = "+Inf" if bound == float("inf") else repr(bound)
            lines.append(f'http_request_duration_seconds_bucket{{le="{le}"}} {n * share}')
        return "\n".join(lines) + "\n"

    def stop(self) -> None:
        if self.thread.is_alive():
            self.server.shutdown()
            self.thread.join()
        self.server.server_close()


@pytest.fixture
def pods() -> Iterator[dict[str, list[Pod]]]:
    out = {"v1-stable": [Pod("v1-stable", 40), Pod("v1-stable", 60)], "v2-canary": [Pod("v2-canary", 20)]}
    yield out
    for group in out.values():
        for pod in group:
            pod.stop()


async def both(prom: LocalPrometheus, scrape: ScrapeMetrics, query: QueryPolicy) -> tuple[Snapshot, Snapshot]:
    """Both snapshots at one instant: ours first, then Prometheus evaluated at that same time.

    Evaluating the two at different instants (a query to Prometheus can take a
    second on a busy machine) moves the window past the newest sample, and
    ``rate`` then rightly extrapolates less: the comparison would measure the
    test's own timing, not the provider.
    """
    ours = await scrape.snapshot(TARGET)
    at = scrape.clock.now()
    settings = PrometheusSettings(url=prom.url)  # type: ignore[call-arg]
    async with PrometheusMetrics(settings, query, now=lambda: at) as provider:
        theirs = await provider.snapshot(TARGET)
    return theirs, ours


def close_enough(a: float | None, b: float | None, rel: float = 0.03) -> bool:
    return a is not None and b is not None and abs(a - b) <= rel * max(abs(a), abs(b))


async def test_same_snapshot_as_prometheus_and_the_known_rates(
    pods: dict[str, list[Pod]], tmp_path: Path
) -> None:
    query = QueryPolicy(window=f"{WINDOW}s")  # type: ignore[call-arg]
    jobs = [
        ScrapeJob(f"checkout-{v}", [p.address for p in group], {"job": "checkout", "version": v}, "1s")
        for v, group in pods.items()
    ]
    targets = {v: [p.address for p in group] for v, group in pods.items()}
    settings = ScrapeSettings(interval_seconds=1, timeout_seconds=2, retention_seconds=120)  # type: ignore[call-arg]
    prom = LocalPrometheus(tmp_path, scrape_jobs=jobs)
    await asyncio.to_thread(prom.start)
    try:
        async with ScrapeMetrics(
            targets, settings, query=query, service="checkout", clock=SystemClock()
        ) as scrape:
            # Prometheus applies new targets ~5s after it starts; then a full window.
            await asyncio.sleep(WINDOW + 7)
            theirs, ours = await both(prom, scrape, query)
            for version, mine, other, rps in (
                ("v1-stable", ours.stable, theirs.stable, 100),
                ("v2-canary", ours.canary, theirs.canary, 20),
            ):
                assert close_enough(mine.requests, rps * WINDOW), (version, mine, other)
                assert close_enough(other.requests, rps * WINDOW), (version, mine, other)
                assert close_enough(mine.error_rate, ERRORS[version], rel=1e-6)
                assert close_enough(other.error_rate, ERRORS[version], rel=1e-6)
                p99 = histogram_quantile(0.99, [(b, s) for b, s in SHARES])
                assert close_enough(mine.p99_seconds, p99, rel=1e-6)
                assert close_enough(other.p99_seconds, p99, rel=1e-6)
                # the histograms behind the exceedance evidence: same bounds, same shares
                assert mine.latency_buckets is not None and other.latency_buckets is not None
                assert [b for b, _ in mine.latency_buckets] == [b for b, _ in other.latency_buckets]
                for (bound, count), (_, their_count), (_, share) in zip(
                    mine.latency_buckets, other.latency_buckets, SHARES, strict=True
                ):
                    assert close_enough(count, their_count), (bound, count, their_count)
                    assert close_enough(count / mine.latency_buckets[-1][1], share, rel=1e-6)
            assert ours.age_seconds is not None and ours.age_seconds < 1.5
            assert theirs.age_seconds is not None and theirs.age_seconds < 1.5

            # The canary pod dies: both mark its series stale at their next scrape.
            pods["v2-canary"][0].stop()
            await asyncio.sleep(3)
            theirs, ours = await both(prom, scrape, query)
            canary = next(t for t in scrape.targets if t.version == "v2-canary")
            assert not canary.up and canary.failures >= 1 and scrape.failures == canary.failures
            for snap in (ours, theirs):
                # Samples from before the death still fill part of the window...
                assert snap.canary.requests is not None and snap.canary.requests < 20 * WINDOW
                # ...but the stale canary no longer holds the newest-sample age back.
                assert snap.age_seconds is not None and snap.age_seconds < 1.5
            assert await scrape.is_online()
            async with httpx.AsyncClient() as client:
                up = await client.get(f"{prom.url}/api/v1/query", params={"query": 'up{version="v2-canary"}'})
            assert up.json()["data"]["result"][0]["value"][1] == "0"
    finally:
        await asyncio.to_thread(prom.stop)
