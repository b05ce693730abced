"""The demo's users: HTTP requests at a fixed rate through the router.

Open-loop load (requests start on schedule whether or not earlier ones have
finished, as real users do), bounded by ``max_in_flight`` so that a stalled
backend cannot make the generator pile up thousands of tasks: requests that
would exceed the bound are counted as ``skipped``. It stops by itself after
``duration`` seconds, or when ``stop()`` is called.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from dataclasses import dataclass, field

from canarypilot.routing.proxy import (
    MAX_HEAD_BYTES,
    MAX_RESPONSE_BODY,
    ProtocolError,
    close_writer,
    read_message,
)

_TICK = 0.01


@dataclass
class LoadStats:
    """What the users saw: responses by status code, failures, and skipped requests."""

    sent: int = 0
    codes: collections.Counter[int] = field(default_factory=collections.Counter)
    failures: int = 0
    skipped: int = 0

    @property
    def answered(self) -> int:
        return sum(self.codes.values())

    @property
    def error_ratio(self) -> float:
        """Share of requests that got a 5xx or no answer at all."""
        bad = sum(n for code, n in self.codes.items() if code >= 500) + self.failures
        return bad / max(1, self.answered + self.failures)


class LoadGenerator:
    """Sends ``rps`` GET requests per second to ``host:port`` over keep-alive connections.

    >>> # gen = LoadGenerator("127.0.0.1", proxy.port, rps=300, duration=60)
    >>> # task = asyncio.create_task(gen.run()); ...; gen.stop(); await task
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        rps: float,
        duration: float | None = None,
        path: str = "/",
        max_in_flight: int = 256,
        timeout: float = 5.0,
    ) -> None:
        if rps <= 0:
            raise ValueError("rps must be positive")
        self.host = host
        self.port = port
        self.rps = rps
        self.duration = duration
        self.max_in_flight = max_in_flight
        self.timeout = timeout
        self.stats = LoadStats()
        self._request = (
            f"GET {path} HTTP/1.1\r\nhost: {host}:{port}\r\nuser-agent: canarypilot-demo\r\n\r\n".encode()
        )
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._in_flight: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """Stop starting new requests; ``run`` returns once the in-flight ones finish."""
        self._stopping.set()

    async def run(self) -> LoadStats:
        started = time.monotonic()
        try:
            while not self._stopping.is_set():
                elapsed = time.monotonic() - started
                if self.duration is not None and elapsed >= self.duration:
                    break
                due = int(elapsed * self.rps) + 1 - self.stats.sent - self.stats.skipped
                for _ in range(max(0, due)):
                    if len(self._in_flight) >= self.max_in_flight:
                        self.stats.skipped += 1
                        continue
                    self.stats.sent += 1
                    task = asyncio.create_task(self._one())
                    self._in_flight.add(task)
                    task.add_done_callback(self._in_flight.discard)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), _TICK)
            if self._in_flight:
                await asyncio.wait(set(self._in_flight), timeout=self.timeout + 1)
        finally:
            for task in list(self._in_flight):
                task.cancel()
            await asyncio.gather(*self._in_flight, return_exceptions=True)
            idle, self._idle = self._idle, []
            for _, writer in idle:
                await close_writer(writer)
        return self.stats

    async def _one(self) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                status = await self._exchange(reuse=True)
        except (OSError, TimeoutError, ProtocolError):
            self.stats.failures += 1
            return
        self.stats.codes[status] += 1

    async def _exchange(self, *, reuse: bool) -> int:
        """One request; a kept-alive connection the server closed meanwhile is retried once, fresh."""
        reused = reuse and bool(self._idle)
        if reused:
            reader, writer = self._idle.pop()
        else:
            reader, writer = await asyncio.open_connection(self.host, self.port, limit=MAX_HEAD_BYTES)
        try:
            writer.write(self._request)
            await writer.drain()
            response = await read_message(reader, body_limit=MAX_RESPONSE_BODY, response=True)
        except (OSError, ProtocolError):
            await close_writer(writer)
            if reused:
                return await self._exchange(reuse=False)
            raise
        except BaseException:
            await close_writer(writer)
            raise
        if response is None:
            await close_writer(writer)
            if reused:
                return await self._exchange(reuse=False)
            raise ProtocolError("the server closed the connection without answering")
        if response.keep_alive:
            self._idle.append((reader, writer))
        else:
            await close_writer(writer)
        return response.status
