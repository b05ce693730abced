"""Synthetic, deterministic traffic data for a local Prometheus: no service needed.

The example (``python -m canarypilot.local.example``), the demo and the tests
describe each version's traffic (request rate, error fraction, latency mix) and
turn it into OpenMetrics text for ``promtool tsdb create-blocks-from
openmetrics``; ``LocalPrometheus(workdir, openmetrics=text)`` then serves it.
The series are the article's: ``http_requests_total{job, version, code}`` and
the classic histogram ``http_request_duration_seconds_{bucket,count,sum}{job,
version, le}``.

Counters grow linearly, so ``increase()`` over any window inside the span is
exactly ``rate * window``; ``requests``, ``errors`` and ``bucket_rates`` say
what Prometheus must answer. The tests' ``tests/support/promdata.py`` adds an
independent ``histogram_quantile`` on top::

    data = ServiceData("checkout", end=END, versions=(
        Traffic("v1-stable", rps=20, latency=((0.05, 0.95), (0.3, 0.05))),
        Traffic("v2-canary", rps=5, latency=((0.05, 0.90), (0.4, 0.10)), error_fraction=0.01),
    ))
    with LocalPrometheus(workdir, openmetrics=data.openmetrics()) as prom:
        ...  # query at time=END

Evaluate queries at ``end``: the data may lie in the past, and Prometheus keeps
it because LocalPrometheus sets a 100-year retention.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from canarypilot.local.prometheus import openmetrics_text

#: A fixed instant (2023-11-14T22:13:20Z) for data that must not depend on the wall clock.
END = 1_700_000_000.0

#: Bucket bounds of client libraries' default histogram, in seconds (+Inf is added).
DEFAULT_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

#: 97% of requests at 40 ms, 3% at 200 ms: p99 lands inside the (0.1, 0.25] bucket.
DEFAULT_LATENCY: tuple[tuple[float, float], ...] = ((0.04, 0.97), (0.2, 0.03))

TYPES = {"http_requests": "counter", "http_request_duration_seconds": "histogram"}


@dataclass(frozen=True)
class Traffic:
    """What one version served: ``rps`` requests per second, of which ``error_fraction``
    answered ``error_code``; ``latency`` is a mix of (seconds, share of requests), shares
    summing to 1 — every request of a share takes exactly that long."""

    version: str
    rps: float = 20.0
    error_fraction: float = 0.0
    latency: tuple[tuple[float, float], ...] = DEFAULT_LATENCY
    error_code: str = "500"

    def __post_init__(self) -> None:
        if not math.isclose(sum(share for _, share in self.latency), 1.0, abs_tol=1e-9):
            raise ValueError(f"latency shares of {self.version} must sum to 1")
        if not 0 <= self.error_fraction <= 1 or self.rps < 0:
            raise ValueError("rps must be >= 0 and error_fraction within [0, 1]")

    def cumulative_share(self, le: float) -> float:
        """Share of requests at or below ``le`` seconds (a bucket's share)."""
        return sum(share for seconds, share in self.latency if seconds <= le)

    @property
    def mean_seconds(self) -> float:
        return sum(seconds * share for seconds, share in self.latency)


@dataclass(frozen=True)
class ServiceData:
    """Samples of ``service``'s versions every ``interval`` seconds from ``end - span`` to ``end``.

    ``labels`` are added to every series (e.g. ``{"namespace": "prod"}``).
    """

    service: str
    versions: Sequence[Traffic]
    end: float = END
    span_seconds: float = 900.0
    interval_seconds: float = 15.0
    buckets: tuple[float, ...] = DEFAULT_BUCKETS
    labels: Mapping[str, str] = field(default_factory=dict)

    def traffic(self, version: str) -> Traffic:
        for t in self.versions:
            if t.version == version:
                return t
        raise KeyError(version)

    def samples(self) -> Iterator[tuple[str, dict[str, str], float, float]]:
        """``(name, labels, timestamp, value)`` for every series and scrape."""
        steps = round(self.span_seconds / self.interval_seconds)
        for traffic in self.versions:
            base = {**self.labels, "job": self.service, "version": traffic.version}
            ok_rate = traffic.rps * (1 - traffic.error_fraction)
            err_rate = traffic.rps * traffic.error_fraction
            for i in range(steps + 1):
                ts = self.end - (steps - i) * self.interval_seconds
                elapsed = i * self.interval_seconds
                yield "http_requests_total", {**base, "code": "200"}, ts, ok_rate * elapsed
                if traffic.error_fraction > 0:
                    yield "http_requests_total", {**base, "code": traffic.error_code}, ts, err_rate * elapsed
                for le in (*self.buckets, math.inf):
                    count = traffic.rps * traffic.cumulative_share(le) * elapsed
                    yield "http_request_duration_seconds_bucket", {**base, "le": _le(le)}, ts, count
                yield "http_request_duration_seconds_count", base, ts, traffic.rps * elapsed
                total_seconds = traffic.rps * traffic.mean_seconds * elapsed
                yield "http_request_duration_seconds_sum", base, ts, total_seconds

    def openmetrics(self) -> str:
        """OpenMetrics text for ``promtool tsdb create-blocks-from openmetrics``."""
        return openmetrics(self)

    # What Prometheus must answer, evaluated at ``end`` over a window within the span.

    def requests(self, version: str, window: float) -> float:
        """``increase(http_requests_total[window])`` summed over codes."""
        return self.traffic(version).rps * window

    def errors(self, version: str, window: float) -> float:
        t = self.traffic(version)
        return t.rps * t.error_fraction * window

    def error_rate(self, version: str, window: float) -> float:
        return self.errors(version, window) / self.requests(version, window)

    def bucket_rates(self, version: str, window: float) -> list[tuple[float, float]]:
        """``rate(..._bucket[window])`` per upper bound, +Inf included (linear counters:
        the same for every window inside the span)."""
        del window
        t = self.traffic(version)
        return [(le, t.rps * t.cumulative_share(le)) for le in (*self.buckets, math.inf)]


def openmetrics(*services: ServiceData) -> str:
    """One OpenMetrics document holding several services (one Prometheus for all)."""
    return openmetrics_text((s for data in services for s in data.samples()), TYPES)


def _le(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(bound)
