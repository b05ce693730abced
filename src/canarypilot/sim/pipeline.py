"""The simulated metrics pipeline: client counters, scrapes, ingestion lag, queries.

Each version keeps what a Prometheus client library keeps: a cumulative
request counter per status code and a classic latency histogram (cumulative
``le`` buckets). Every ``scrape_interval`` the pipeline takes a sample of all of
them, stamped with the scrape time; the samples become visible to queries only
``scrape_lag`` later, as in a real Prometheus behind a busy ingester. Queries
run through ``canarypilot.metrics.local``: the same ``rate``,
``increase`` and ``histogram_quantile`` as the embedded metrics, so the lag,
the extrapolation at the window's edges and the bucket resolution are the real
ones.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable

import numpy as np

from canarypilot.metrics.local import SeriesStore, StoreMetrics
from canarypilot.model import Target
from canarypilot.policy import QueryPolicy
from canarypilot.sim.scenario import Monitoring
from canarypilot.sim.world import Served


def _le(bound: float) -> str:
    # What prometheus_client writes: 0.005, 0.25, 1.0, +Inf.
    return repr(float(bound))


class _Counters:
    """One version's cumulative counters, as its client library holds them."""

    def __init__(self, buckets: int) -> None:
        self.ok = 0
        self.errors = 0
        self.buckets = np.zeros(buckets + 1, dtype=np.int64)  # last one is +Inf

    def add(self, served: Served) -> None:
        self.ok += served.requests - served.errors
        self.errors += served.errors
        self.buckets += served.buckets


class MetricsPipeline:
    """Counters in, a ``MetricsProvider`` out; call ``advance`` as simulated time passes."""

    def __init__(
        self,
        target: Target,
        monitoring: Monitoring,
        query: QueryPolicy,
        *,
        now: Callable[[], float],
        start: float,
    ) -> None:
        self.target = target
        self.monitoring = monitoring
        self.query = query
        self.store = SeriesStore(retention_seconds=max(3600.0, 4 * query.window_seconds))
        self.provider = StoreMetrics(self.store, query, now=now)
        bounds = monitoring.buckets_seconds
        self._les = [_le(b) for b in bounds] + ["+Inf"]
        self._versions = (target.stable_version, target.canary_version)
        self._counters = (_Counters(len(bounds)), _Counters(len(bounds)))
        self._next_scrape = start
        self._in_flight: deque[tuple[float, list[float]]] = deque()
        self.scrapes = 0
        #: Time stamp of the newest scrape that queries can see (its lag has passed).
        self.published_at = -math.inf
        q = query
        # The series never change, only their values: build the label sets once.
        self._series: list[tuple[str, dict[str, str]]] = []
        for version in self._versions:
            base = {q.job_label: target.service, q.version_label: version}
            self._series.append((q.requests_metric, {**base, q.code_label: "200"}))
            self._series.append((q.requests_metric, {**base, q.code_label: "500"}))
            self._series.extend((q.latency_metric, {**base, "le": le}) for le in self._les)

    def record(self, stable: Served, canary: Served) -> None:
        """Count what the two versions served during one tick."""
        self._counters[0].add(stable)
        self._counters[1].add(canary)

    def advance(self, now: float) -> None:
        """Scrape every interval up to ``now``; publish scrapes whose lag has passed."""
        while self._next_scrape <= now:
            self._in_flight.append((self._next_scrape, self._scrape()))
            self._next_scrape += self.monitoring.scrape_interval_seconds
        lag = self.monitoring.scrape_lag_seconds
        while self._in_flight and self._in_flight[0][0] + lag <= now:
            at, values = self._in_flight.popleft()
            self.published_at = at
            for (name, labels), value in zip(self._series, values, strict=True):
                self.store.append(name, labels, at, value)

    @property
    def next_scrape(self) -> float:
        return self._next_scrape

    def _scrape(self) -> list[float]:
        """Every series' current value, in the order of ``self._series``."""
        self.scrapes += 1
        values: list[float] = []
        for counters in self._counters:
            values.append(float(counters.ok))
            values.append(float(counters.errors))
            values.extend(np.cumsum(counters.buckets).tolist())
        return values
