"""Deterministic Prometheus data for tests, and what Prometheus must answer for it.

The builder lives in ``canarypilot.local.traffic`` (the example and the demo use
it too); this module re-exports it and adds the test oracle: Prometheus'
classic-histogram quantile, written here independently of canarypilot's own
PromQL code, so expected values never come from the code under test::

    data = ServiceData("checkout", end=END, versions=(
        Traffic("v1-stable", rps=20, latency=((0.05, 0.95), (0.3, 0.05))),
        Traffic("v2-canary", rps=5, latency=((0.05, 0.90), (0.4, 0.10)), error_fraction=0.01),
    ))
    with LocalPrometheus(tmp_path, openmetrics=data.openmetrics()) as prom:
        ...  # query at time=END (pass now=lambda: END to the provider)
    data.quantile("v2-canary", 0.99, window=300)   # what histogram_quantile(0.99, ...) gives
    data.requests("v2-canary", 300), data.error_rate("v2-canary", 300)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from canarypilot.local import traffic
from canarypilot.local.traffic import (
    DEFAULT_BUCKETS,
    DEFAULT_LATENCY,
    END,
    TYPES,
    Traffic,
    openmetrics,
)

__all__ = [
    "DEFAULT_BUCKETS",
    "DEFAULT_LATENCY",
    "END",
    "TYPES",
    "ServiceData",
    "Traffic",
    "bucket_rows",
    "histogram_quantile",
    "openmetrics",
]


class ServiceData(traffic.ServiceData):
    """``canarypilot.local.traffic.ServiceData`` plus the expected quantile."""

    def quantile(self, version: str, q: float, window: float) -> float:
        """``histogram_quantile(q, rate(..._bucket[window]))`` for this version."""
        return histogram_quantile(q, self.bucket_rates(version, window))


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float:
    """Prometheus' classic-histogram quantile: linear interpolation inside the bucket
    where the rank falls; the lowest bucket starts at 0; a rank in the +Inf bucket
    gives the highest finite bound; no observations give NaN."""
    ordered = sorted(buckets)
    if not ordered or not math.isinf(ordered[-1][0]) or len(ordered) < 2:
        return math.nan
    total = ordered[-1][1]
    if total == 0:
        return math.nan
    rank = q * total
    b = next(i for i, (_, count) in enumerate(ordered) if count >= rank)
    if b == len(ordered) - 1:
        return ordered[-2][0]
    end, count = ordered[b]
    start = 0.0
    if b > 0:
        start = ordered[b - 1][0]
        count -= ordered[b - 1][1]
        rank -= ordered[b - 1][1]
    return start + (end - start) * (rank / count)


def bucket_rows(p99: str, total: float = 100.0) -> list[tuple[str, str]]:
    """``(le, rate)`` rows of a histogram whose ``histogram_quantile(0.99, ...)`` is exactly ``p99``.

    What a scripted Prometheus answers to the provider's bucket query: ``"NaN"``
    gives a histogram without observations (Prometheus' NaN), ``"0"`` one with
    every request in an ``le="0"`` bucket. A quantile cannot be infinite.
    """
    if p99 == "NaN":
        return [("1", "0"), ("+Inf", "0")]
    value = float(p99)
    if not math.isfinite(value):
        raise ValueError(f"no histogram has the quantile {p99}")
    if value == 0:
        return [("0", repr(total)), ("+Inf", repr(total))]
    # The rank 0.99 * total lands exactly on the first bucket's count: its upper bound.
    return [(repr(value), repr(0.99 * total)), (repr(2 * value), repr(total)), ("+Inf", repr(total))]
