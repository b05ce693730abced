"""One analysis against a real Prometheus, beside the raw PromQL it needs.

``python -m benchmarks analyze [--runs=N] [--services=S]`` starts Debian's
Prometheus on a free loopback port with S services of generated traffic
(default 20, so queries touch a realistic number of series), then measures, in
the same run and against the same server:

* raw: the four PromQL queries canarypilot sends, issued directly with one
  reused httpx client, concurrently (what the provider does) and one after the
  other (what the article's Go code does);
* ``await canarypilot.analyze(...)``: a fresh provider per call, as the command does;
* a reused ``PrometheusMetrics`` provider plus the judge (what ``serve`` does);
* the command: ``canarypilot --version`` (start-up) and a whole
  ``canarypilot analyze --format json`` process.

It prints medians and the analysis/raw ratio; docs/benchmarks.md records a run.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path


def _option(argv: list[str], name: str, default: int) -> int:
    for arg in argv:
        if arg.startswith(f"--{name}="):
            return int(arg.split("=", 1)[1])
    return default


async def _timed(runs: int, call: Callable[[], Awaitable[object]]) -> list[float]:
    await call()  # warm-up: connection set-up and Prometheus' caches, not what we compare
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        await call()
        out.append(time.perf_counter() - started)
    return out


def _process(runs: int, argv: list[str], ok: tuple[int, ...] = (0,)) -> list[float]:
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        code = subprocess.run(argv, capture_output=True, check=False).returncode
        out.append(time.perf_counter() - started)
        if code not in ok:
            raise SystemExit(f"{argv[:3]} exited {code}")
    return out


async def _measure(url: str, runs: int, service: str, at: float) -> dict[str, list[float]]:
    import httpx

    from canarypilot import Settings, analyze
    from canarypilot.api import decide
    from canarypilot.metrics.prometheus import PrometheusMetrics
    from canarypilot.metrics.selectors import render, selector
    from canarypilot.model import Target

    settings = Settings().merged({"prometheus": {"url": url}})
    q = settings.query
    sel = selector(q, [service], [q.stable_version, q.canary_version])
    texts = [
        render(t, q, sel=sel, by="job, version")
        for t in (q.latency_template, q.requests_template, q.errors_template)
    ] + [f"max by (job, version) (timestamp({q.requests_metric}{{{sel}}}))"]
    params = [{"query": text, "time": f"{at:.3f}"} for text in texts]

    async with httpx.AsyncClient(base_url=url) as client:

        async def one(p: dict[str, str]) -> None:
            response = await client.get("/api/v1/query", params=p)
            response.raise_for_status()
            response.json()

        async def concurrent() -> None:
            await asyncio.gather(*(one(p) for p in params))

        async def sequential() -> None:
            for p in params:
                await one(p)

        results = {
            "raw PromQL, 4 queries concurrently": await _timed(runs, concurrent),
            "raw PromQL, 4 queries one by one": await _timed(runs, sequential),
        }

    async def fresh() -> None:
        await analyze(service, settings=settings, at=at)

    results["canarypilot.analyze() (new client each call)"] = await _timed(runs, fresh)
    target = Target(service)
    async with PrometheusMetrics(settings.prometheus, q, now=lambda: at) as provider:

        async def reused() -> None:
            decide(await provider.snapshot(target), settings)

        results["provider reused + judge (as serve)"] = await _timed(runs, reused)
    return results


def run(argv: list[str]) -> None:
    from canarypilot.local.prometheus import LocalPrometheus
    from canarypilot.local.traffic import END, ServiceData, Traffic, openmetrics

    runs = _option(argv, "runs", 30)
    services = _option(argv, "services", 20)
    data = [
        ServiceData(
            f"svc-{i:03d}",
            (Traffic("v1-stable", rps=40), Traffic("v2-canary", rps=4, error_fraction=0.001)),
            span_seconds=3600,
        )
        for i in range(services)
    ]
    series = sum(1 for _ in data[0].samples()) * services // (3600 // 15 + 1)
    with tempfile.TemporaryDirectory(prefix="bench-analyze-") as tmp:
        started = time.perf_counter()
        with LocalPrometheus(Path(tmp), openmetrics=openmetrics(*data)) as prom:
            ready = time.perf_counter() - started
            print(f"Prometheus with {services} services ({series} series, 1h at 15s) ready in {ready:.1f}s")
            results = asyncio.run(_measure(prom.url, runs, "svc-007", END))
            cli = str(Path(sys.executable).parent / "canarypilot")
            proc_runs = max(3, runs // 5)
            results["command start-up: canarypilot --version"] = _process(proc_runs, [cli, "--version"])
            analyze_cmd = [cli, "analyze", "-p", prom.url, "-s", "svc-007", "--at", str(END), "-f", "json"]
            results["command: canarypilot analyze (whole process)"] = _process(proc_runs, analyze_cmd)

    raw = statistics.median(results["raw PromQL, 4 queries concurrently"])
    print(f"\n{'measurement':<48} {'median':>10} {'p90':>10} {'× raw':>7}  runs")
    for name, samples in results.items():
        median = statistics.median(samples)
        p90 = sorted(samples)[max(0, int(len(samples) * 0.9) - 1)]
        print(f"{name:<48} {median * 1000:>8.1f}ms {p90 * 1000:>8.1f}ms {median / raw:>7.2f}  {len(samples)}")
