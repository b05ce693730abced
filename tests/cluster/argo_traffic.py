"""Traffic that follows the weight Argo sets: what a canary behind the nginx canary Ingress
would serve, for the Argo end-to-end tests.

No ingress controller runs in the harness, so the canary Ingress' weight annotation moves
no request. This exporter stands in for the service: every ``tick`` it reads the weight
Argo wrote on the canary Ingress of each followed namespace and adds that share of
``rps`` requests to the canary's counters, the rest to stable's (the article's series:
``http_requests_total{job, version, code}`` and the classic histogram
``http_request_duration_seconds``). A real Prometheus scrapes it every second, so the
analyzer reads, as in production, a canary share that changes when Argo moves the weight:
that is how the gate finds the step's start (``metrics.history.observed_since``). A
service can also keep a steady share (``steady``): the article's template, which names no
weight, is pointed at one.

Why not backfilled data, as elsewhere: Prometheus refuses scraped samples older than its
newest block, and backfilled data around *now* (the analyzer queries at the wall clock)
puts a block ten minutes ahead, so the scrapes would be out of bounds.

Counts are expected values (fractional, no sampling noise): a test sees the gate's rules,
not the dice.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from canarypilot.local.processes import free_port
from canarypilot.local.traffic import DEFAULT_BUCKETS, Traffic
from tests.cluster import kube
from tests.cluster.apiserver import Cluster

STABLE = Traffic("v1-stable")
HEALTHY = Traffic("v2-canary")
#: p99 +137 %: 10 % of the canary's requests at 500 ms.
REGRESSED = Traffic("v2-canary", latency=((0.04, 0.9), (0.5, 0.1)))


@dataclass
class _Counters:
    requests: float = 0.0
    errors: float = 0.0
    buckets: list[float] = field(default_factory=lambda: [0.0] * (len(DEFAULT_BUCKETS) + 1))
    seconds: float = 0.0

    def add(self, traffic: Traffic, n: float) -> None:
        self.requests += n
        self.errors += n * traffic.error_fraction
        for i, le in enumerate(DEFAULT_BUCKETS):
            self.buckets[i] += n * traffic.cumulative_share(le)
        self.buckets[-1] += n
        self.seconds += n * traffic.mean_seconds


@dataclass
class _Followed:
    namespace: str | None  # None: a steady ``share``, followed from no Ingress
    service: str
    canary: Traffic
    stable: Traffic
    share: float = 0.0
    counters: dict[str, _Counters] = field(default_factory=dict)


class FollowingTraffic:
    """``/metrics`` for services whose canary share is the canary Ingress' weight."""

    def __init__(self, cluster: Cluster, *, rps: float = 2000.0, tick: float = 0.25) -> None:
        self.cluster, self.rps, self.tick = cluster, rps, tick
        self.port = free_port()
        self._followed: dict[str, _Followed] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def follow(self, namespace: str, service: str, canary: Traffic, stable: Traffic = STABLE) -> None:
        """From now on ``service``'s traffic follows the canary weight in ``namespace``
        (its counters carry on from where they were: counters only grow)."""
        with self._lock:
            before = self._followed.get(service)
            kept = before.counters if before is not None else {}
            self._followed[service] = _Followed(namespace, service, canary, stable, counters=kept)

    def steady(self, service: str, canary: Traffic, share: float, stable: Traffic = STABLE) -> None:
        """``service``'s canary takes ``share`` of its traffic, whatever any Ingress says."""
        with self._lock:
            self._followed[service] = _Followed(None, service, canary, stable, share=share)

    def _advance(self, http: object, elapsed: float) -> None:
        with self._lock:
            followed = list(self._followed.values())
        for f in followed:
            share = f.share
            if f.namespace is not None:
                weight = kube.canary_weight(http, f.namespace)  # type: ignore[arg-type]
                share = (weight or 0) / 100.0  # Argo writes percent (no canary-weight-total)
            n = self.rps * elapsed
            with self._lock:
                f.counters.setdefault(f.canary.version, _Counters()).add(f.canary, n * share)
                f.counters.setdefault(f.stable.version, _Counters()).add(f.stable, n * (1 - share))

    def _run(self) -> None:
        with self.cluster.http() as http:
            last = time.monotonic()
            while not self._stop.wait(self.tick):
                now = time.monotonic()
                try:
                    self._advance(http, now - last)
                except Exception:  # the API server stopping at the end of the module
                    continue
                last = now

    def exposition(self) -> str:
        lines = [
            "# TYPE http_requests_total counter",
            "# TYPE http_request_duration_seconds histogram",
        ]
        with self._lock:
            for f in self._followed.values():
                for version, c in f.counters.items():
                    base = f'job="{f.service}",version="{version}"'
                    lines.append(f'http_requests_total{{{base},code="200"}} {c.requests - c.errors:.6f}')
                    lines.append(f'http_requests_total{{{base},code="500"}} {c.errors:.6f}')
                    for le, count in zip((*DEFAULT_BUCKETS, "+Inf"), c.buckets, strict=True):
                        lines.append(f'http_request_duration_seconds_bucket{{{base},le="{le}"}} {count:.6f}')
                    lines.append(f"http_request_duration_seconds_count{{{base}}} {c.requests:.6f}")
                    lines.append(f"http_request_duration_seconds_sum{{{base}}} {c.seconds:.6f}")
        return "\n".join(lines) + "\n"

    @contextmanager
    def running(self) -> Iterator[FollowingTraffic]:
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = exporter.exposition().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threads = [
            threading.Thread(target=server.serve_forever, daemon=True),
            threading.Thread(target=self._run, daemon=True),
        ]
        for thread in threads:
            thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            server.shutdown()
            server.server_close()
