"""Embedded metrics beside a real Prometheus: the same snapshot, evaluated both ways.

``python -m benchmarks promql [--runs=N] [--services=S] [--pods=P]`` generates
one hour of traffic (15 s samples) for S services x 2 versions x P pods (request
counters with two codes and a 12-bucket latency histogram), loads it both into
Debian's Prometheus (promtool backfill) and into a ``SeriesStore``, and then
measures, at the same instant and for the same targets:

* the snapshot through ``PrometheusMetrics`` (4 PromQL queries over HTTP, one reused provider);
* the snapshot through ``local.evaluate`` on the store (what ``ScrapeMetrics`` and the simulator do);
* the largest relative difference between the two snapshots' numbers;
* what the embedded scraper pays per scrape: parsing one pod's /metrics page and
  appending it to the store, and the store's memory for the whole hour.

It prints medians and p90; docs/benchmarks.md records a run.
"""

from __future__ import annotations

import asyncio
import math
import random
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from canarypilot.model import Target
    from canarypilot.policy import QueryPolicy

BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
END = 1_700_000_000.0
HOUR = 3600.0


def _option(argv: list[str], name: str, default: int) -> int:
    for arg in argv:
        if arg.startswith(f"--{name}="):
            return int(arg.split("=", 1)[1])
    return default


def _samples(services: int, pods: int, seed: int = 7) -> Iterator[tuple[str, dict[str, str], float, float]]:
    rng = random.Random(seed)
    for s in range(services):
        for version, slow in (("v1-stable", 1.0), ("v2-canary", 1.3)):
            for pod in range(pods):
                base = {"job": f"svc-{s}", "version": version, "instance": f"pod-{pod}"}
                ok = errors = 0.0
                buckets = [0.0] * (len(BOUNDS) + 1)
                for i in range(int(HOUR / 15) + 1):
                    t = END - HOUR + 15 * i + round(rng.uniform(-0.2, 0.2), 3)
                    n = rng.randint(100, 300)
                    failed = sum(rng.random() < 0.01 for _ in range(n))
                    ok, errors = ok + n - failed, errors + failed
                    for _ in range(n // 10):  # a sample of latencies is enough for the shape
                        seconds = rng.expovariate(1 / (0.05 * slow))
                        for b, bound in enumerate((*BOUNDS, math.inf)):
                            if seconds <= bound:
                                buckets[b] += 10
                    yield "http_requests_total", {**base, "code": "200"}, t, ok
                    yield "http_requests_total", {**base, "code": "500"}, t, errors
                    for bound, count in zip((*BOUNDS, math.inf), buckets, strict=True):
                        le = "+Inf" if math.isinf(bound) else repr(bound)
                        yield "http_request_duration_seconds_bucket", {**base, "le": le}, t, count


def _stats(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, math.ceil(0.9 * len(ordered)) - 1)]


def _relative_gap(a: float | None, b: float | None) -> float:
    if a is None or b is None:
        return 0.0 if a is b else math.inf
    if math.isnan(a) or math.isnan(b):
        return 0.0 if math.isnan(a) and math.isnan(b) else math.inf
    return 0.0 if a == b else abs(a - b) / max(abs(a), abs(b))


def _time(runs: int, call: Callable[[], object]) -> list[float]:
    call()
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        out.append((time.perf_counter() - started) * 1000)
    return out


def run(argv: list[str]) -> None:
    from canarypilot.local.prometheus import LocalPrometheus, openmetrics_text
    from canarypilot.metrics.local import SeriesStore, evaluate
    from canarypilot.model import Target
    from canarypilot.policy import QueryPolicy

    runs = _option(argv, "runs", 20)
    services = _option(argv, "services", 10)
    pods = _option(argv, "pods", 3)
    data = list(_samples(services, pods))
    series = len({(n, tuple(sorted(lab.items()))) for n, lab, _, _ in data})
    print(f"{services} services x 2 versions x {pods} pods: {series} series, {len(data)} samples over 1 h")

    query = QueryPolicy()  # type: ignore[call-arg]
    at = END - 7.5
    one = [Target("svc-0")]
    every = [Target(f"svc-{s}") for s in range(services)]

    tracemalloc.start()
    store = SeriesStore(retention_seconds=HOUR + 60, max_series=series + 10)
    started = time.perf_counter()
    for name, labels, t, value in data:
        store.append(name, labels, t, value)
    append_ms = (time.perf_counter() - started) * 1000
    store_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()

    with tempfile.TemporaryDirectory() as tmp:
        prom = LocalPrometheus(Path(tmp), openmetrics=openmetrics_text(data))
        started = time.perf_counter()
        prom.start()
        backfill_s = time.perf_counter() - started
        try:
            remote = asyncio.run(_remote(prom.url, query, at, one, every, runs))
        finally:
            prom.stop()

    local_one = _time(runs, lambda: evaluate(store, one, query, at=at))
    local_all = _time(runs, lambda: evaluate(store, every, query, at=at))
    ours = evaluate(store, every, query, at=at)
    theirs = remote["snapshots"]
    gap = max(
        _relative_gap(getattr(getattr(ours[t], side), f), getattr(getattr(theirs[t], side), f))
        for t in every
        for side in ("stable", "canary")
        for f in ("p99_seconds", "error_rate", "requests")
    )

    page, parse_ms = _scrape_cost(runs)
    rows = [
        ("snapshot of 1 service, Prometheus HTTP API (reused provider)", *_stats(remote["one"])),
        ("snapshot of 1 service, local evaluate on the store", *_stats(local_one)),
        (f"snapshot of {services} services, Prometheus HTTP API (batched)", *_stats(remote["all"])),
        (f"snapshot of {services} services, local evaluate on the store", *_stats(local_all)),
        (f"one scrape: parse a {page}-line /metrics page and append it", *_stats(parse_ms)),
    ]
    print(f"\n| measurement ({runs} runs after a warm-up) | median | p90 |\n|---|---|---|")
    for label, median, p90 in rows:
        print(f"| {label} | {median:.2f} ms | {p90:.2f} ms |")
    print(f"\nlargest relative difference between the two snapshots: {gap:.2e}")
    print(f"store: {len(store)} series, {store_bytes / 2**20:.1f} MiB, filled in {append_ms:.0f} ms")
    print(f"Prometheus: backfill + start {backfill_s:.1f} s")


async def _remote(
    url: str, query: QueryPolicy, at: float, one: list[Target], every: list[Target], runs: int
) -> dict[str, Any]:
    from canarypilot.metrics.prometheus import PrometheusMetrics
    from canarypilot.policy import PrometheusSettings

    settings = PrometheusSettings(url=url)  # type: ignore[call-arg]
    async with PrometheusMetrics(settings, query, now=lambda: at) as provider:
        out: dict[str, Any] = {}
        for key, targets in (("one", one), ("all", every)):
            await provider.snapshot_many(targets)
            times = []
            for _ in range(runs):
                started = time.perf_counter()
                await provider.snapshot_many(targets)
                times.append((time.perf_counter() - started) * 1000)
            out[key] = times
        out["snapshots"] = dict(await provider.snapshot_many(every))
        return out


def _scrape_cost(runs: int) -> tuple[int, list[float]]:
    """Parse + append one pod's page (a 12-bucket histogram with 5 routes, counters) per scrape."""
    from prometheus_client.parser import text_string_to_metric_families

    from canarypilot.metrics.local import SeriesStore

    lines = ["# TYPE http_requests_total counter", "# TYPE http_request_duration_seconds histogram"]
    for route in range(5):
        for code in ("200", "404", "500"):
            lines.append(f'http_requests_total{{route="/r{route}",code="{code}"}} {route * 1000 + 7}')
        for bound in (*BOUNDS, "+Inf"):
            lines.append(f'http_request_duration_seconds_bucket{{route="/r{route}",le="{bound}"}} 42')
    text = "\n".join(lines) + "\n"
    store = SeriesStore()
    clock = [0.0]

    def scrape() -> None:
        clock[0] += 15
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                store.append(
                    sample.name, {**sample.labels, "version": "v1", "instance": "pod"}, clock[0], sample.value
                )

    return len(lines), _time(runs, scrape)
