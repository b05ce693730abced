"""Replaying a day of one service against a real Prometheus, beside one query per analysis.

``python -m benchmarks replay [--hours=24] [--runs=3] [--releases]`` generates
``hours`` of one service at a 15 s scrape with the simulator (200 requests per
second). By default the canary is present throughout, its weight cycling 5,
10, 20, 50 % every hour: every interval is an analysis of a step up to an hour
long, the worst case. ``--releases``: eight releases a day (every 3 hours, 5,
10, 20, 50 % for 5 minutes each). It backfills the data into Debian's Prometheus
on a loopback port, then measures in the same run against the same server:

* ``replay``: ``fetch_slices`` (the live analysis' range queries, once over the
  whole range) plus the walk with the default policy (``analysis.decide``) at
  every 15 s, as ``canarypilot replay`` does — with the number of HTTP queries;
* ``per-analysis``: what replaying by asking Prometheus at every instant would
  cost — ``PrometheusMetrics.history`` (the live analysis' four queries) at
  ``--sample`` instants, extrapolated to every instant of the range.

docs/benchmarks.md records a run.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.bench_analyze import _option


def run(argv: list[str]) -> None:
    from canarypilot.local.prometheus import LocalPrometheus, openmetrics_text
    from canarypilot.replay.synthetic import TYPES, simulate_history
    from canarypilot.sim.scenario import parse_scenario

    hours = _option(argv, "hours", 24)
    runs = _option(argv, "runs", 3)
    sample = _option(argv, "sample", 100)
    start = 1_700_006_400.0
    seconds = hours * 3600.0
    model = parse_scenario(
        {
            "name": "day",
            "duration_seconds": seconds,
            "traffic": {"rps": 200},
            "stable": {"latency": {"median_ms": 50, "p99_ms": 160}, "error_rate": 0.001},
            "monitoring": {"scrape_interval_seconds": 15},
            "events": [{"type": "warmup_spike", "magnitude": 1.5, "decay_seconds": 20}],
        }
    )
    ladder = (5.0, 10.0, 20.0, 50.0)

    def all_day(t: float) -> float:
        return ladder[int(t // 3600) % 4]

    def releases(t: float) -> float:
        # Eight releases a day, one every 3 hours: 5, 10, 20, 50 % for 5 minutes each.
        into = t % 10_800
        return ladder[int(into // 300)] if into < 1200 else 0.0

    profile = "releases" if "--releases" in argv else "all-day"
    print(f"profile: {profile}")
    began = time.perf_counter()
    history = simulate_history(
        model,
        service="checkout",
        start=start,
        seconds=seconds,
        weight=releases if profile == "releases" else all_day,
    )
    text = openmetrics_text(history.samples, TYPES)
    print(f"generated {len(history.samples):,} samples ({hours} h) in {time.perf_counter() - began:.1f}s")
    with tempfile.TemporaryDirectory() as tmp:
        began = time.perf_counter()
        with LocalPrometheus(Path(tmp), openmetrics=text) as prom:
            print(f"backfilled and started Prometheus in {time.perf_counter() - began:.1f}s")
            asyncio.run(_measure(prom.url, start, seconds, runs, sample))


async def _measure(url: str, start: float, seconds: float, runs: int, sample: int) -> None:
    from canarypilot.metrics.history import Slicing
    from canarypilot.metrics.prometheus import PrometheusMetrics
    from canarypilot.model import Target
    from canarypilot.policy import PrometheusSettings, Settings
    from canarypilot.replay.fetch import fetch_slices
    from canarypilot.replay.walk import Walker

    settings = Settings(prometheus={"url": url})  # type: ignore[arg-type]
    slicing = Slicing.from_settings(settings)
    target = Target("checkout")
    fetch_times, walk_times = [], []
    analyses = queries = 0
    for _ in range(runs):
        async with PrometheusMetrics(PrometheusSettings(url=url)) as provider:  # type: ignore[call-arg]
            began = time.perf_counter()
            fetched = await fetch_slices(provider, target, start=start, end=start + seconds, slicing=slicing)
            fetch_times.append(time.perf_counter() - began)
        began = time.perf_counter()
        walker = Walker(fetched.history, fetched.slicing, interval=15.0)
        analyses = len(walker.run(settings))
        walk_times.append(time.perf_counter() - began)
        queries = fetched.queries
    fetch_s, walk_s = statistics.median(fetch_times), statistics.median(walk_times)
    total = fetch_s + walk_s
    print(
        f"replay: {analyses:,} analyses, {queries} queries: "
        f"fetch {fetch_s:.2f}s + walk {walk_s:.2f}s = {total:.2f}s"
    )

    clock = [start]  # evaluate in the past, as analyze --at does
    async with PrometheusMetrics(PrometheusSettings(url=url), now=lambda: clock[0]) as provider:  # type: ignore[call-arg]
        step = seconds / sample
        began = time.perf_counter()
        for i in range(sample):
            clock[0] = start + 600 + i * step
            since = start + 300 * int((clock[0] - start) // 300)  # at most a step's length
            await provider.history(target, weight=5.0, slicing=slicing, since=since)
        per = (time.perf_counter() - began) / sample
        sent = provider.queries_sent
    every = per * analyses
    print(
        f"per-analysis: {per * 1000:.1f} ms and {sent / sample:.0f} queries per instant -> "
        f"{every:.1f}s and {sent / sample * analyses:,.0f} queries for {analyses:,} instants "
        f"({every / total:.1f}x the replay)"
    )
