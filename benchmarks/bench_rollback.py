"""Rollback latency: from the rollback decision to the router confirming 0 %.

``python -m benchmarks rollback [--runs=N]`` starts Debian's HAProxy and nginx
on loopback in front of two small backends under steady background traffic,
and measures, for each router:

* controller: a real ``RolloutController`` (system clock, state directory with
  fsynced audit log) whose first analysis sees a severe violation; the time
  between the VERDICT event (rollback decided) and the ROUTER event (router
  confirmed 0 %), as both are logged;
* router: ``reset()`` then ``get_weight()`` alone, from 50 %, which is what the
  controller's rollback does.

The article's figure is "within 12 seconds" through Argo Rollouts; the issue's
targets are <= 100 ms with HAProxy's runtime API and <= 1 s with an nginx reload.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from canarypilot.clock import SystemClock
from canarypilot.local.haproxy import BACKEND, LocalHAProxy
from canarypilot.local.nginx import LocalNginx
from canarypilot.model import Snapshot, Target, VersionStats
from canarypilot.policy import Settings
from canarypilot.rollout import EventKind, RolloutController, RolloutEvent, RolloutSpec, StateStore
from canarypilot.routing.base import Router
from canarypilot.routing.haproxy import HAProxyRouter

TARGET = Target("bench")
SETTINGS = Settings().merged(
    {
        "rollout": {
            "pauses_seconds": [0.05, 0.05],
            "scrape_lag_seconds": 0.0,
            "min_window_seconds": 0.01,
            "control_poll_seconds": 0.05,
        },
        "breaker": {"warmup_seconds": 0.0},
    }
)


class _SevereCanary:
    """Metrics where the canary is 80 % slower: a severe violation, rolled back at once."""

    async def snapshot(self, target: Target, *, window_seconds: float | None = None) -> Snapshot:
        return Snapshot(
            target,
            VersionStats("v1-stable", 0.200, 0.0, 10_000),
            VersionStats("v2-canary", 0.360, 0.0, 1_000),
            at=time.time(),
            window_seconds=window_seconds or 300,
        )

    async def is_online(self) -> bool:
        return True


async def _answer(name: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
        while True:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(name), name))
            await writer.drain()
    writer.close()


@contextlib.asynccontextmanager
async def _backends() -> AsyncIterator[tuple[str, str]]:
    servers = [
        await asyncio.start_server(lambda r, w, n=n: _answer(n, r, w), "127.0.0.1", 0)
        for n in (b"v1-stable", b"v2-canary")
    ]
    try:
        ports = [s.sockets[0].getsockname()[1] for s in servers]
        yield f"127.0.0.1:{ports[0]}", f"127.0.0.1:{ports[1]}"
    finally:
        for server in servers:
            server.close()


@contextlib.asynccontextmanager
async def _traffic(url: str) -> AsyncIterator[None]:
    import httpx

    stop = asyncio.Event()

    async def client() -> None:
        async with httpx.AsyncClient(timeout=5) as http:
            while not stop.is_set():
                with contextlib.suppress(httpx.HTTPError):
                    await http.get(url)

    tasks = [asyncio.create_task(client()) for _ in range(2)]
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks)


async def _controller_rollbacks(runs: int, router: Router, workdir: Path) -> list[float]:
    out = []
    for run in range(runs):
        events: list[RolloutEvent] = []
        with StateStore(workdir / f"state-{run}") as store:
            await RolloutController(
                RolloutSpec("bench", TARGET, SETTINGS),
                metrics=_SevereCanary(),
                router=router,
                clock=SystemClock(),
                store=store,
                on_event=events.append,
            ).run()
        decided = next(e.at for e in events if e.kind is EventKind.VERDICT and e.data["action"] == "rollback")
        confirmed = next(e.at for e in events if e.kind is EventKind.ROUTER and e.data["requested"] == 0.0)
        out.append(confirmed - decided)
    return out


async def _router_resets(runs: int, router: Router) -> list[float]:
    out = []
    for _ in range(runs):
        await router.set_weight(50)
        started = time.perf_counter()
        await router.reset()
        if await router.get_weight() != 0.0:
            raise SystemExit("router did not confirm 0%")
        out.append(time.perf_counter() - started)
    return out


def _row(name: str, what: str, samples: list[float], target_ms: float) -> str:
    ms = sorted(s * 1000 for s in samples)
    p95 = ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]
    verdict = "yes" if ms[-1] <= target_ms else "NO"
    return (
        f"| {name} | {what} | {len(ms)} | {statistics.median(ms):.1f} ms | {p95:.1f} ms | "
        f"{ms[-1]:.1f} ms | {target_ms:g} ms: {verdict} |"
    )


async def _measure(runs: int) -> list[str]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="cp-bench-rollback-") as tmp:
        work = Path(tmp)
        async with _backends() as (stable, canary):
            with LocalHAProxy(work / "haproxy", stable=stable, canary=canary) as lb:
                router = HAProxyRouter(lb.runtime_socket, backend=BACKEND)
                async with _traffic(lb.url):
                    rows.append(_row("HAProxy runtime API", "controller: decision → confirmed 0%",
                                     await _controller_rollbacks(runs, router, work / "h"), 100))  # fmt: skip
                    rows.append(_row("HAProxy runtime API", "router: reset + read-back",
                                     await _router_resets(runs, router), 100))  # fmt: skip
            with LocalNginx(work / "nginx", stable=stable, canary=canary) as ng:
                router_n = ng.router()
                async with _traffic(ng.url):
                    small = max(3, runs // 3)
                    nginx_controller = await _controller_rollbacks(small, router_n, work / "n")
                    rows.append(
                        _row("nginx reload", "controller: decision → confirmed 0%", nginx_controller, 1000)
                    )
                    rows.append(_row("nginx reload", "router: write, nginx -t, SIGHUP, new workers answer",
                                     await _router_resets(small, router_n), 1000))  # fmt: skip
    return rows


def _option(argv: list[str], name: str, default: int) -> int:
    for arg in argv:
        if arg.startswith(f"--{name}="):
            return int(arg.split("=", 1)[1])
    return default


def run(argv: list[str]) -> None:
    runs = _option(argv, "runs", 20)
    rows = asyncio.run(_measure(runs))
    print("| router | measured | runs | median | p95 | max | target met (max) |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(row)
    print("| article (Argo Rollouts + nginx-ingress) | abort to stable | – | – | – | 12 000 ms | – |")


__all__ = ["run"]
