"""Loopback pods for the scrape tests: real HTTP servers exposing prometheus_client metrics.

Each pod serves ``/metrics`` from its own registry (the article's metric names,
no ``job`` label: the scraper adds it) while a thread records traffic: every
``TICK`` seconds, ``per_tick`` requests, 98% at ``fast`` seconds and 2% at
``slow`` seconds, and ``error_share`` of them answered 500. The p99 therefore
lies in the bucket holding ``slow``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from canarypilot.local.processes import free_port

TICK = 0.05
BUCKETS = (0.025, 0.05, 0.1, 0.2, 0.4, 0.8)


@dataclass(frozen=True)
class Traffic:
    fast: float = 0.03
    slow: float = 0.15
    error_share: float = 0.0
    per_tick: int = 50


class Pod:
    """One version's pod on 127.0.0.1; ``stop()`` ends its server and its traffic."""

    def __init__(self, version: str, traffic: Traffic) -> None:
        self.version, self.traffic = version, traffic
        registry = CollectorRegistry()
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Latency.",
            labelnames=("version",),
            buckets=BUCKETS,
            registry=registry,
        ).labels(version)
        self.requests = Counter(
            "http_requests_total", "Requests.", labelnames=("version", "code"), registry=registry
        )
        self.port = free_port()
        self.server, self.thread = start_http_server(self.port, addr="127.0.0.1", registry=registry)
        self._stopped = threading.Event()
        self._traffic = threading.Thread(target=self._serve_traffic, daemon=True)
        self._traffic.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _serve_traffic(self) -> None:
        t = self.traffic
        slow = max(1, round(t.per_tick * 0.02))
        errors = round(t.per_tick * t.error_share)
        while not self._stopped.wait(TICK):
            for i in range(t.per_tick):
                self.latency.observe(t.slow if i < slow else t.fast)
                self.requests.labels(self.version, "500" if i < errors else "200").inc()

    def stop(self) -> None:
        self._stopped.set()
        self._traffic.join()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()
