"""Reading a classic latency histogram: quantiles, shares beyond a latency, tail slope.

A histogram is a tuple of cumulative ``(upper_bound, count)`` pairs sorted by bound and
ending at ``+Inf`` (``SliceCounts.buckets``). Inside a bucket the counts are spread
linearly, as Prometheus' ``histogram_quantile`` does. In the tail, where the density
falls, that linear spread puts mass too far to the right, so the interpolated quantile
is an *upper* bound of the true one and the interpolated share beyond a latency an
*upper* bound of the true share. The engine uses that direction deliberately: stable's
share read this way is never too low a reference, and the canary's counts it is compared
with are read only at bucket bounds, where they are exact (``signals.py``).

Pure arithmetic; no I/O.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable, Sequence

Buckets = tuple[tuple[float, float], ...]

#: The tail index used when the histogram cannot tell (an empty bucket above the quantile):
#: a log-normal with p99 = 3.2 x median has 5.3 at its p99, an exponential ~4.6; 4 leans heavy.
FALLBACK_TAIL_INDEX = 4.0


def valid(buckets: Buckets | None) -> bool:
    """Finite, non-negative counts under increasing bounds ending at ``+Inf``: readable.

    Counts that dip a little from one bound to the next are readable: increases computed by
    Prometheus extrapolate each bucket series on its own (``monotone`` fixes them, as
    ``histogram_quantile`` does).
    """
    if not buckets:
        return False
    bounds, counts = zip(*buckets, strict=True)
    if not math.isinf(bounds[-1]) or min(counts) < 0 or not all(map(math.isfinite, counts)):
        return False
    return all(map(operator.lt, bounds, bounds[1:]))


def monotone(buckets: Buckets) -> Buckets:
    """The histogram with each cumulative count raised to the largest below it.

    >>> monotone(((0.1, 5.0), (0.2, 4.9), (math.inf, 6.0)))
    ((0.1, 5.0), (0.2, 5.0), (inf, 6.0))
    """
    out, top = [], 0.0
    for bound, count in buckets:
        top = max(top, count)
        out.append((bound, top))
    return tuple(out)


def total(buckets: Buckets) -> float:
    return buckets[-1][1]


def add(histograms: Iterable[Buckets]) -> Buckets | None:
    """The sum of histograms with the same bounds (``None`` when there are none or they differ)."""
    bounds: tuple[float, ...] | None = None
    sums: list[float] = []
    for buckets in histograms:
        these, counts = zip(*buckets, strict=True)
        if bounds is None:
            bounds, sums = these, list(counts)
        elif these != bounds:
            return None
        else:
            sums = list(map(operator.add, sums, counts))
    return None if bounds is None else tuple(zip(bounds, sums, strict=True))


def count_at_or_below(buckets: Buckets, latency: float) -> float:
    """Requests at or below ``latency``, linear inside its bucket (the first bucket starts at 0)."""
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if latency <= bound:
            if math.isinf(bound):
                return lower_count
            width = bound - lower_bound
            share = 1.0 if width <= 0 else max(0.0, latency - lower_bound) / width
            return lower_count + (count - lower_count) * share
        lower_bound, lower_count = bound, count
    return total(buckets)


def share_beyond(buckets: Buckets, latency: float) -> float | None:
    """The share of requests slower than ``latency`` (``None`` without requests)."""
    n = total(buckets)
    if n <= 0:
        return None
    return max(0.0, n - count_at_or_below(buckets, latency)) / n


def tail_share_beyond(buckets: Buckets, latency: float) -> float | None:
    """The share of requests slower than ``latency``, interpolated *geometrically* inside its
    bucket: ``S(x) = S(a)^(1-t) S(b)^t`` for ``x = a + t (b - a)``.

    Exact for an exponential tail; an upper bound of the true share whenever the tail is at
    least that heavy inside the bucket (the hazard rate does not rise: log-normal latencies
    past their p9x, Pareto tails, mixtures of fast and slow paths), and far tighter than the
    linear spread, which over-states the share of any falling tail. For a lighter tail it
    can under-state it by a few percent (7 % for a log-normal with p99 = 1.6 x median).
    Falls back to the linear reading where the bucket's upper share is 0 or unbounded.

    >>> edges = ((0.15, 98.6), (0.2, 99.71), (math.inf, 100.0))
    >>> round(100 * tail_share_beyond(edges, 0.174), 2), round(100 * share_beyond(edges, 0.174), 2)
    (0.66, 0.87)
    """
    n = total(buckets)
    if n <= 0:
        return None
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if latency <= bound:
            above_low, above_high = n - lower_count, n - count
            if math.isinf(bound) or lower_bound <= 0 or above_high <= 0 or above_low <= 0:
                return share_beyond(buckets, latency)
            t = max(0.0, latency - lower_bound) / (bound - lower_bound)
            return math.exp((1 - t) * math.log(above_low / n) + t * math.log(above_high / n))
        lower_bound, lower_count = bound, count
    return share_beyond(buckets, latency)


def quantile(buckets: Buckets, q: float) -> float | None:
    """``histogram_quantile(q)``: ``None`` without requests; the largest finite bound when
    the rank falls in the ``+Inf`` bucket (as Prometheus answers).

    >>> round(quantile(((0.1, 50.0), (0.2, 100.0), (math.inf, 100.0)), 0.75), 6)
    0.15
    """
    n = total(buckets)
    if n <= 0 or not 0 < q < 1:
        return None
    rank = q * n
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound if lower_bound > 0 else None
            inside = count - lower_count
            if inside <= 0:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / inside
        lower_bound, lower_count = bound, count
    return None


def bound_at_or_above(buckets: Buckets, latency: float) -> float | None:
    """The smallest finite bucket bound at or above ``latency`` (``None`` past the last one)."""
    for bound, _ in buckets:
        if math.isfinite(bound) and bound >= latency:
            return bound
    return None


def tail_index(buckets: Buckets, latency: float) -> float:
    """How fast the share of slower requests falls around ``latency``: ``a`` in
    ``share(> x) ~ x^-a``, measured across the bucket that holds ``latency``, clamped to
    [1, 20]; ``FALLBACK_TAIL_INDEX`` when that bucket's upper share is empty or infinite.

    It turns a share of requests beyond stable's p99 into a p99 ratio (``decide.py``).
    """
    lower_bound = 0.0
    for bound, _ in buckets:
        if latency <= bound:
            if math.isinf(bound) or lower_bound <= 0:
                return FALLBACK_TAIL_INDEX
            low, high = share_beyond(buckets, lower_bound), share_beyond(buckets, bound)
            if not low or not high:
                return FALLBACK_TAIL_INDEX
            return min(20.0, max(1.0, math.log(low / high) / math.log(bound / lower_bound)))
        lower_bound = bound
    return FALLBACK_TAIL_INDEX


def bounds_of(buckets: Sequence[tuple[float, float]]) -> tuple[float, ...]:
    return tuple(bound for bound, _ in buckets)
