"""A sample service version: a real HTTP server whose behaviour comes from a scenario.

Each version of the demo's service is one of these, listening on 127.0.0.1. It
answers ``/`` after a service time drawn from its ``Behaviour`` (slower while
its cache warms up after a traffic change, failing when its connection pool is
exhausted) and exposes ``/metrics`` with the article's metric names and labels,
from its own prometheus_client registry:

* ``http_request_duration_seconds`` histogram, labels ``job`` and ``version``;
* ``http_requests_total`` counter, labels ``job``, ``version`` and ``code``.

The recorded duration is the service time the behaviour dictates (the handler
really takes that long, plus scheduling delay). The demo's users, router and
both versions share one event loop on a possibly busy laptop; recording the
wall time would add that loop's scheduling delay to both versions' tails and
drown a 25% regression in noise, which no dedicated server would suffer.
"""

from __future__ import annotations

import asyncio
import collections
import random
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from canarypilot.demo.scenarios import Behaviour
from canarypilot.routing.proxy import MAX_HEAD_BYTES, Message, render_response, serve_connection

#: Buckets 5 ms .. ~2.6 s, each 8% wider than the last: fine enough that
#: histogram_quantile resolves a 15% p99 difference.
LATENCY_BUCKETS = tuple(round(0.005 * 1.08**i, 6) for i in range(82))
#: Arrival rate is measured over this many seconds (for the capacity knee).
RATE_WINDOW = 2.0


class SampleService:
    """One version of the demo service.

    >>> # service = await SampleService("checkout", "v2-canary", Behaviour(), total_rps=300).start()
    >>> # service.url -> 'http://127.0.0.1:PORT'
    """

    def __init__(
        self,
        job: str,
        version: str,
        behaviour: Behaviour,
        *,
        total_rps: float,
        rng: random.Random | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.job = job
        self.version = version
        self.behaviour = behaviour
        self.total_rps = total_rps
        self._rng = rng or random.Random()
        self._monotonic = monotonic
        self.registry = CollectorRegistry(auto_describe=True)
        duration = Histogram(
            "http_request_duration_seconds",
            "Time spent answering a request.",
            labelnames=("job", "version"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._duration = duration.labels(job, version)
        self._requests = Counter(
            "http_requests_total",
            "Requests answered, by status code.",
            labelnames=("job", "version", "code"),
            registry=self.registry,
        )
        self._arrivals: collections.deque[float] = collections.deque()
        self._warm_since: float | None = None
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.port = 0
        self.served = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def traffic_changed(self) -> None:
        """The version's share of traffic just changed: its caches are cold again."""
        self._warm_since = self._monotonic()

    # -- behaviour -----------------------------------------------------------------

    def arrival_rate(self) -> float:
        """Requests per second that reached this version over the last ``RATE_WINDOW``."""
        now = self._monotonic()
        while self._arrivals and self._arrivals[0] < now - RATE_WINDOW:
            self._arrivals.popleft()
        return len(self._arrivals) / RATE_WINDOW

    def plan(self) -> tuple[float, int]:
        """Service time (seconds) and status code for a request arriving now."""
        b = self.behaviour
        self._arrivals.append(self._monotonic())
        spread = self._rng.triangular(-1.0, 1.0, 0.0) * b.jitter
        seconds = b.latency_ms / 1000 * (1 + spread)
        if self._warm_since is not None and b.warmup_spike_seconds > 0:
            cooling = 1 - (self._monotonic() - self._warm_since) / b.warmup_spike_seconds
            if cooling > 0:
                seconds *= 1 + (b.warmup_factor - 1) * cooling
        if b.knee_share is not None:
            excess = self.arrival_rate() / (b.knee_share * self.total_rps) - 1
            if excess > 0:
                seconds *= 1 + 1.5 * excess  # waiting for a pooled connection
                if self._rng.random() < min(0.6, excess):
                    return seconds, 503
        if self._rng.random() < b.error_rate:
            return seconds, 500
        return seconds, 200

    # -- serving -------------------------------------------------------------------

    async def start(self) -> SampleService:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0, limit=MAX_HEAD_BYTES)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    async def __aenter__(self) -> SampleService:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await serve_connection(reader, writer, self._connections, self._respond)

    async def _respond(self, request: Message) -> bytes:
        answer = await self._answer(request)
        if request.first == b"HEAD":
            answer = answer[: answer.index(b"\r\n\r\n") + 4]
        return answer

    async def _answer(self, request: Message) -> bytes:
        path = request.second.split(b"?", 1)[0]
        if path == b"/metrics":
            return render_response(
                200, generate_latest(self.registry), content_type=CONTENT_TYPE_LATEST.encode()
            )
        if path in (b"/healthz", b"/livez"):
            return render_response(200, b"ok\n")
        if path != b"/":
            return render_response(404, b"not found\n")
        seconds, code = self.plan()
        await asyncio.sleep(seconds)
        self._duration.observe(seconds)
        self._requests.labels(self.job, self.version, str(code)).inc()
        self.served += 1
        return render_response(code, f"{self.version}: {'ok' if code == 200 else 'failed'}\n".encode())
