"""Two tiny real HTTP servers answering with their version name, and a traffic counter.

Real-traffic router tests put HAProxy or nginx in front of these and count which
version answered each request.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx


async def _serve(version: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    body = version.encode()
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length:
                await reader.readexactly(length)
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


class SplitCheckingRouter:
    """Wraps a real router: after each confirmed change, sends traffic and records the split."""

    def __init__(self, router: object, url: str) -> None:
        self.router = router
        self.url = url
        self.observed: list[tuple[float, float]] = []

    async def set_weight(self, weight: float) -> None:
        await self.router.set_weight(weight)  # type: ignore[attr-defined]
        self.observed.append((weight, await split(self.url)))

    async def get_weight(self) -> float:
        return await self.router.get_weight()  # type: ignore[attr-defined,no-any-return]

    async def reset(self) -> None:
        await self.router.reset()  # type: ignore[attr-defined]
        self.observed.append((0.0, await split(self.url)))


@dataclass
class Backends:
    stable: str
    canary: str


@contextlib.asynccontextmanager
async def version_servers() -> AsyncIterator[Backends]:
    """``v1-stable`` and ``v2-canary`` on two free loopback ports."""
    servers = []
    handlers: set[asyncio.Task[None]] = set()
    writers: set[asyncio.StreamWriter] = set()

    def handler(version: str):  # type: ignore[no-untyped-def]
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            handlers.add(task)
            writers.add(writer)
            try:
                await _serve(version, reader, writer)
            finally:
                handlers.discard(task)
                writers.discard(writer)

        return handle

    for version in ("v1-stable", "v2-canary"):
        servers.append(await asyncio.start_server(handler(version), host="127.0.0.1", port=0))
    ports = [s.sockets[0].getsockname()[1] for s in servers]
    try:
        yield Backends(stable=f"127.0.0.1:{ports[0]}", canary=f"127.0.0.1:{ports[1]}")
    finally:
        for server in servers:
            server.close()
        for writer in list(writers):
            writer.transport.abort()  # ends each handler's read with IncompleteReadError
        await asyncio.gather(*handlers, return_exceptions=True)
        for server in servers:
            await server.wait_closed()


async def split(url: str, requests: int = 200, concurrency: int = 4) -> float:
    """Send ``requests`` GETs through ``url``; the percentage answered by the canary."""
    counts: Counter[str] = Counter()
    queue = list(range(requests))

    async def worker(client: httpx.AsyncClient) -> None:
        while queue:
            queue.pop()
            response = await client.get(url)
            response.raise_for_status()
            counts[response.text] += 1

    async with httpx.AsyncClient(timeout=10) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    assert set(counts) <= {"v1-stable", "v2-canary"}, counts
    return 100.0 * counts["v2-canary"] / requests
