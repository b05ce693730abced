"""The demo's traffic router: HAProxy when it is installed, else the embedded proxy.

``TrafficChangeRouter`` wraps whichever router is used and tells the sample
services when their share of traffic changes, which is what starts a cache
warm-up spike in the ``warmup-spike`` scenario: the same signal a real cache
gets, new keys arriving.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING

from canarypilot.demo.children import Backend, Processes
from canarypilot.routing.base import Router
from canarypilot.routing.proxy import Upstream, WeightedProxy

if TYPE_CHECKING:
    from canarypilot.demo.sample_service import SampleService


class TrafficChangeRouter:
    """A ``Router`` that forwards to another and reports each weight change to the services."""

    def __init__(self, inner: Router, services: Sequence[SampleService]) -> None:
        self.inner = inner
        self.services = list(services)
        self.weight = 0.0

    async def set_weight(self, weight: float) -> None:
        await self.inner.set_weight(weight)
        self._changed(weight)

    async def get_weight(self) -> float:
        return await self.inner.get_weight()

    async def reset(self) -> None:
        await self.inner.reset()
        self._changed(0.0)

    def _changed(self, weight: float) -> None:
        if weight != self.weight:
            self.weight = float(weight)
            for service in self.services:
                service.traffic_changed()


async def start_router(
    stack: AsyncExitStack,
    processes: Processes,
    choice: Backend,
    run_dir: Path,
    stable: SampleService,
    canary: SampleService,
) -> tuple[Router, tuple[str, int], str]:
    """Start the router; return it, the address users connect to, and a description."""
    if choice is Backend.AUTO:
        choice = Backend.REAL if _haproxy_installed() else Backend.EMBEDDED
    if choice is Backend.REAL:
        return await _start_haproxy(stack, processes, run_dir, stable, canary)
    proxy = WeightedProxy(Upstream("127.0.0.1", stable.port), Upstream("127.0.0.1", canary.port))
    await stack.enter_async_context(proxy)
    return proxy, ("127.0.0.1", proxy.port), f"embedded proxy ({proxy.url})"


def _haproxy_installed() -> bool:
    from canarypilot.local.processes import require

    try:
        require("haproxy")
    except Exception:
        return False
    return True


async def _start_haproxy(
    stack: AsyncExitStack, processes: Processes, run_dir: Path, stable: SampleService, canary: SampleService
) -> tuple[Router, tuple[str, int], str]:
    from canarypilot.local.haproxy import BACKEND, CANARY_SERVER, STABLE_SERVER, LocalHAProxy
    from canarypilot.routing.haproxy import HAProxyRouter

    haproxy = LocalHAProxy(run_dir / "haproxy", stable=stable.address, canary=canary.address)
    processes.add(haproxy)
    await asyncio.to_thread(haproxy.start)
    processes.record()
    stack.push_async_callback(asyncio.to_thread, haproxy.stop)
    router = HAProxyRouter(
        haproxy.runtime_socket, backend=BACKEND, stable_server=STABLE_SERVER, canary_server=CANARY_SERVER
    )
    return router, ("127.0.0.1", haproxy.port), f"HAProxy ({haproxy.url}, runtime API)"
