"""/analyze under load: throughput and latency, and how many PromQL queries it costs.

A real Prometheus holds data for 500 services; `canarypilot serve` runs in its own
process (one worker); the load generator runs in a third process: keep-alive
HTTP/1.1 clients on raw asyncio streams, so the generator costs little CPU per
request. Measured:

* cached, closed loop: every client asks for the same service (decisions reused for
  the TTL) and sends its next request as soon as the answer arrives (maximum rate);
* cached, open loop: 1,500 req/s offered, spread over the connections; latency counts
  from each request's planned send time (no coordinated omission);
* uncached: ``cache_ttl_seconds: 0`` and every client asks for its own service, so
  every answer needs fresh queries (batching still merges those that coincide);
* Prometheus queries for 200 concurrent identical requests, and for 500 different
  services asked at once, read from Prometheus' own /metrics.

Run: ``python -m benchmarks serve [--seconds=10]``.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

SERVICES = [f"svc-{i:03d}" for i in range(500)]
#: The offered load of the open-loop rows (the issue's target: 1,500 req/s at p99 <= 50 ms).
RATE = 1500


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> bool:
    """Send one request on a keep-alive connection and read the whole answer; True if 200."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)
    return head.startswith(b"HTTP/1.1 200")


async def _client(host: str, port: int, paths: list[str], stop_at: float, latencies: list[float]) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    errors = 0
    i = 0
    try:
        while time.perf_counter() < stop_at:
            path = paths[i % len(paths)]
            i += 1
            started = time.perf_counter()
            ok = await _exchange(reader, writer, f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
            latencies.append(time.perf_counter() - started)
            errors += not ok
    finally:
        writer.close()
        await writer.wait_closed()
    return errors


async def _paced_client(
    host: str, port: int, path: str, first: float, interval: float, stop_at: float, latencies: list[float]
) -> int:
    """Open loop: a request every ``interval`` seconds; latency counts from the planned send
    time, so a slow answer that delays the next request is charged to the server."""
    reader, writer = await asyncio.open_connection(host, port)
    request = f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
    errors = 0
    planned = first
    try:
        while planned < stop_at:
            delay = planned - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            ok = await _exchange(reader, writer, request)
            latencies.append(time.perf_counter() - planned)
            errors += not ok
            planned += interval
    finally:
        writer.close()
        await writer.wait_closed()
    return errors


async def _paced(url: str, clients: int, seconds: float, rate: float) -> dict[str, float]:
    host, port = url.removeprefix("http://").split(":")
    interval = clients / rate
    warm: list[float] = []
    start = time.perf_counter() + 0.2
    await asyncio.gather(
        *(
            _paced_client(
                host, int(port), _path(0, False), start + c * interval / clients, interval, start + 1, warm
            )
            for c in range(clients)
        )
    )
    latencies: list[float] = []
    start = time.perf_counter() + 0.2
    stop_at = start + seconds
    errors = await asyncio.gather(
        *(
            _paced_client(
                host, int(port), _path(0, False), start + c * interval / clients, interval, stop_at, latencies
            )
            for c in range(clients)
        )
    )
    return _summary(latencies, time.perf_counter() - start, sum(errors))


async def _load(url: str, clients: int, seconds: float, distinct: bool) -> dict[str, float]:
    host, port = url.removeprefix("http://").split(":")
    warm: list[float] = []
    # Warm-up: open connections and fill the cache, not measured.
    await asyncio.gather(
        *(
            _client(host, int(port), [_path(c, distinct)], time.perf_counter() + 1.0, warm)
            for c in range(clients)
        )
    )
    latencies: list[float] = []
    started = time.perf_counter()
    stop_at = started + seconds
    errors = await asyncio.gather(
        *(_client(host, int(port), [_path(c, distinct)], stop_at, latencies) for c in range(clients))
    )
    return _summary(latencies, time.perf_counter() - started, sum(errors))


def _summary(latencies: list[float], elapsed: float, errors: int) -> dict[str, float]:
    latencies.sort()
    return {
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "errors": errors,
    }


def _path(client: int, distinct: bool) -> str:
    service = SERVICES[client % len(SERVICES)] if distinct else SERVICES[0]
    return f"/analyze?service={service}"


def _generate(call: str) -> dict[str, float]:
    """Run the load generator in a separate process and return its numbers."""
    code = "import asyncio, json; from benchmarks import bench_serve as b; "
    code += f"print(json.dumps(asyncio.run(b.{call})))"
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=True)
    return json.loads(out.stdout)  # type: ignore[no-any-return]


async def _burst(url: str, services: list[str]) -> None:
    async with httpx.AsyncClient(
        base_url=url, timeout=60, limits=httpx.Limits(max_connections=600)
    ) as client:
        answers = await asyncio.gather(*(client.get("/analyze", params={"service": s}) for s in services))
    bad = [a.status_code for a in answers if a.status_code != 200]
    if bad:
        raise RuntimeError(f"{len(bad)} requests failed: {bad[:5]}")


def run(argv: list[str]) -> None:
    seconds = next((float(a.split("=", 1)[1]) for a in argv if a.startswith("--seconds=")), 10.0)
    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root))
    from tests.service.live import live_prometheus, prometheus_queries, serve

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        with live_prometheus(work / "prometheus", extra_services=SERVICES) as prom:
            print(f"Prometheus with 500 services ready in {time.perf_counter() - started:.0f}s")
            uncached = work / "uncached.yaml"
            uncached.write_text("service:\n  cache_ttl_seconds: 0\n")
            rows = []
            for label, config, distinct in (("cached", None, False), ("uncached", str(uncached), True)):
                with serve(prom.url, work / label, config=config) as served:
                    for clients in (50, 200):
                        calls = [
                            (f"{label}, closed", f"_load({served.url!r}, {clients}, {seconds}, {distinct})")
                        ]
                        if label == "cached":
                            calls.append(
                                (
                                    f"{label}, {RATE} req/s",
                                    f"_paced({served.url!r}, {clients}, {seconds}, {RATE})",
                                )
                            )
                        for mode, call in calls:
                            before = prometheus_queries(prom)
                            result = _generate(call)
                            result["queries"] = prometheus_queries(prom) - before
                            rows.append((mode, clients, result))
            print(f"\n/analyze, one worker, load generator in its own process, {seconds:g}s per row")
            header = ("mode", "clients", "req/s", "p50 ms", "p99 ms", "errors", "PromQL")
            print(f"{header[0]:<20} " + " ".join(f"{h:>8}" for h in header[1:]))
            for label, clients, r in rows:
                print(
                    f"{label:<20} {clients:>8} {r['rps']:>8.0f} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} "
                    f"{r['errors']:>8.0f} {r['queries']:>8.0f}"
                )
            with serve(prom.url, work / "queries") as served:
                before = prometheus_queries(prom)
                asyncio.run(_burst(served.url, [SERVICES[1]] * 200))
                identical = prometheus_queries(prom) - before
                before = prometheus_queries(prom)
                asyncio.run(_burst(served.url, SERVICES))
                many = prometheus_queries(prom) - before
            print("\nPromQL queries issued")
            print(f"200 concurrent identical requests:       {identical:.0f} (target: one set of 4)")
            print(f"500 different services in one interval:  {many:.0f} (target: a handful, not 3 x 500)")
