"""PromQL's ``rate``, ``increase`` and ``histogram_quantile``, computed locally.

canarypilot can judge a canary without a Prometheus server: it scrapes the
versions itself (``scrape.py``) or simulates them (``sim``), and then needs the
very numbers Prometheus would have returned, or a decision would change with
the metrics backend. These functions follow Prometheus 2.53's semantics, and
the tests run them against Prometheus' own test scripts:

* a range ``[start, end]`` is closed on both sides (2.x; 3.0 made it left-open);
* ``rate``/``increase`` add back counter resets, extrapolate to the range edges
  when the first/last sample is within 1.1 average intervals of them (else by
  half an interval), and never extrapolate a counter below zero;
* ``histogram_quantile`` sorts and merges buckets by bound, smooths float noise
  (relative 1e-12), forces monotonic counts, needs a ``+Inf`` bucket, and
  interpolates linearly, from 0 in the lowest bucket when its bound is positive.

Samples are ``(timestamp_seconds, value)`` pairs in time order. Timestamps are
rounded to milliseconds, the resolution Prometheus stores, so range edges
behave exactly as they do there.
"""

from __future__ import annotations

import bisect
import math
import re
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from canarypilot.policy.syntax import label_matchers

Sample = tuple[float, float]
"""``(timestamp_seconds, value)``."""

_STALE_BITS = 0x7FF0000000000002
#: Prometheus' staleness marker: a NaN with a particular bit pattern. A series
#: that disappeared gets one; range functions skip it, instant lookups stop at it.
STALE_NAN: float = struct.unpack("<d", struct.pack("<Q", _STALE_BITS))[0]

#: How far back an instant lookup looks for a sample (Prometheus' default, 5m).
DEFAULT_LOOKBACK_SECONDS = 300.0

#: Relative difference under which adjacent bucket counts count as equal (2.53).
BUCKET_PRECISION_TOLERANCE = 1e-12

_FLOAT_TEXT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?", re.IGNORECASE)
_SPECIAL_TEXT = re.compile(r"[+-]?(?:inf|infinity)|nan", re.IGNORECASE)
_HEX_FLOAT_TEXT = re.compile(r"[+-]?0x(?:[0-9a-f]+\.?[0-9a-f]*|\.[0-9a-f]+)p[+-]?\d+", re.IGNORECASE)


def is_stale(value: float) -> bool:
    """Whether ``value`` is the staleness marker (not any NaN: only that one)."""
    return value != value and struct.pack("<d", value) == struct.pack("<Q", _STALE_BITS)


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def select_range(samples: Sequence[Sample], *, start: float, end: float) -> list[Sample]:
    """The samples with ``start <= t <= end`` (milliseconds), staleness markers left out."""
    lo = bisect.bisect_left(samples, _ms(start), key=lambda s: _ms(s[0]))
    hi = bisect.bisect_right(samples, _ms(end), key=lambda s: _ms(s[0]))
    return [s for s in samples[lo:hi] if not is_stale(s[1])]


def latest(
    samples: Sequence[Sample], *, at: float, lookback: float = DEFAULT_LOOKBACK_SECONDS
) -> Sample | None:
    """What an instant selector sees at ``at``: the newest sample no older than ``lookback``.

    ``None`` when there is none, or when the newest one is a staleness marker.
    """
    hi = bisect.bisect_right(samples, _ms(at), key=lambda s: _ms(s[0]))
    if hi == 0:
        return None
    newest = samples[hi - 1]
    if _ms(newest[0]) < _ms(at) - _ms(lookback) or is_stale(newest[1]):
        return None
    return newest


def increase(samples: Sequence[Sample], *, start: float, end: float) -> float | None:
    """How much a counter grew over ``[start, end]``, extrapolated like Prometheus.

    ``None`` (no result, as Prometheus drops the series) with fewer than two samples.

    >>> increase([(0, 0), (60, 6), (120, 12)], start=0, end=120)
    12.0
    """
    return _extrapolated(samples, start=start, end=end, per_second=False)


def rate(samples: Sequence[Sample], *, start: float, end: float) -> float | None:
    """Per-second growth of a counter over ``[start, end]``: ``increase / (end - start)``.

    >>> rate([(0, 0), (60, 6), (120, 12)], start=0, end=120)
    0.1
    """
    return _extrapolated(samples, start=start, end=end, per_second=True)


def _extrapolated(samples: Sequence[Sample], *, start: float, end: float, per_second: bool) -> float | None:
    window = select_range(samples, start=start, end=end)
    if len(window) < 2:
        return None
    start_ms, end_ms = _ms(start), _ms(end)
    first_ms, last_ms = _ms(window[0][0]), _ms(window[-1][0])
    first = window[0][1]
    growth = window[-1][1] - first
    previous = first
    for _, value in window[1:]:
        if value < previous:  # a reset: the counter restarted from zero
            growth += previous
        previous = value

    sampled = (last_ms - first_ms) / 1000
    average_gap = sampled / (len(window) - 1)
    # A series whose first (last) sample is more than 1.1 gaps from the edge is
    # taken to start (end) inside the range: extrapolate only half a gap there.
    threshold = average_gap * 1.1
    to_start = (first_ms - start_ms) / 1000
    to_end = (end_ms - last_ms) / 1000
    if to_start >= threshold:
        to_start = average_gap / 2
    if growth > 0 and first >= 0:
        # Counters start at zero: do not extrapolate back past that point.
        to_zero = sampled * (first / growth)
        to_start = min(to_start, to_zero)
    if to_end >= threshold:
        to_end = average_gap / 2
    factor = _div(sampled + to_start + to_end, sampled)
    if per_second:
        factor = _div(factor, (end_ms - start_ms) / 1000)
    return growth * factor


def cumulative_counts(
    buckets: Iterable[tuple[float, float]], *, seconds: float
) -> tuple[tuple[float, float], ...] | None:
    """Per-second bucket rates as counts over ``seconds``: sorted, repeated bounds summed,
    made monotonic like ``histogram_quantile`` does; ``None`` without a ``+Inf`` bucket.

    >>> cumulative_counts([(math.inf, 3.0), (0.1, 1.0), (0.1, 1.0)], seconds=10)
    ((0.1, 20.0), (inf, 30.0))
    """
    merged: dict[float, float] = {}
    for bound, rate in buckets:
        if not math.isnan(bound) and math.isfinite(rate):
            merged[bound] = merged.get(bound, 0.0) + rate
    if math.inf not in merged:
        return None
    bounds = sorted(merged)
    counts = [merged[b] * seconds for b in bounds]
    _force_monotonic(counts)
    return tuple(zip(bounds, counts, strict=True))


def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float:
    """The ``q`` quantile of a classic histogram given as ``(upper_bound, count)`` pairs.

    The pairs may come in any order and repeat a bound (they are summed). NaN when
    the answer is undefined: no ``+Inf`` bucket, fewer than two bounds, no
    observations, or ``q`` NaN; ``-Inf`` for ``q < 0`` and ``+Inf`` for ``q > 1``.

    >>> histogram_quantile(0.5, [(1.0, 10), (2.0, 30), (math.inf, 40)])
    1.5
    """
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    ordered = sorted(buckets, key=lambda b: b[0])
    if not ordered or ordered[-1][0] != math.inf:
        return math.nan
    bounds: list[float] = []
    counts: list[float] = []
    for bound, count in ordered:
        if bounds and bounds[-1] == bound:
            counts[-1] += count
        else:
            bounds.append(bound)
            counts.append(count)
    _smooth_precision_noise(counts)
    _force_monotonic(counts)
    if len(bounds) < 2:
        return math.nan
    observations = counts[-1]
    if observations == 0:
        return math.nan
    rank = q * observations
    b = _first_reaching(counts, rank)
    if b == len(bounds) - 1:
        # In the +Inf bucket: the best answer is the highest finite bound.
        return bounds[-2]
    if b == 0 and bounds[0] <= 0:
        return bounds[0]
    lower = 0.0
    in_bucket = counts[b]
    if b > 0:
        lower = bounds[b - 1]
        in_bucket -= counts[b - 1]
        rank -= counts[b - 1]
    return lower + (bounds[b] - lower) * _div(rank, in_bucket)


def _smooth_precision_noise(counts: list[float]) -> None:
    # Sums of rates can differ by a few ulps where they should be equal; such a
    # difference must not look like observations in a bucket.
    previous = counts[0]
    for i in range(1, len(counts)):
        current = counts[i]
        gap = abs(current - previous)
        if gap == 0:
            continue
        if _div(gap, current) <= BUCKET_PRECISION_TOLERANCE:
            counts[i] = previous
        else:
            previous = current


def _force_monotonic(counts: list[float]) -> None:
    # Buckets are cumulative; a smaller count above a larger one (a recording
    # rule racing a scrape) is raised to the envelope so the search below works.
    highest = counts[0]
    for i in range(1, len(counts)):
        if counts[i] > highest:
            highest = counts[i]
        elif counts[i] < highest:
            counts[i] = highest


def _first_reaching(counts: Sequence[float], rank: float) -> int:
    """Binary search, over all but the last bucket, for the first count >= rank.

    A binary search (not a scan) so that NaN counts land where Prometheus lands them.
    """
    lo, hi = 0, len(counts) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if counts[mid] >= rank:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _div(a: float, b: float) -> float:
    """IEEE division, as Go does it: x/0 is ±Inf or NaN instead of an exception."""
    if b != 0:
        return a / b
    if a == 0 or math.isnan(a):
        return math.nan
    return math.copysign(math.inf, a) * math.copysign(1.0, b)


def sum_by(
    series: Iterable[tuple[Mapping[str, str], float]], by: Sequence[str]
) -> dict[tuple[str, ...], float]:
    """``sum by (<by>)``: values added per combination of the ``by`` labels.

    A missing label groups as the empty string, as in PromQL.

    >>> sum_by([({"le": "1", "pod": "a"}, 2.0), ({"le": "1", "pod": "b"}, 3.0)], ["le"])
    {('1',): 5.0}
    """
    out: dict[tuple[str, ...], float] = {}
    for labels, value in series:
        key = tuple(labels.get(name, "") for name in by)
        out[key] = out[key] + value if key in out else value
    return out


def parse_float(text: str) -> float | None:
    """A label value such as ``le="0.25"`` or ``"+Inf"`` as a float, the way Go parses it.

    ``None`` for text Go would refuse (Python's ``float`` is laxer: it takes
    spaces and ``1_000``); such a bucket is ignored, as Prometheus ignores it.
    """
    if _SPECIAL_TEXT.fullmatch(text):
        return float(text)
    if _FLOAT_TEXT.fullmatch(text):
        value = float(text)
    elif _HEX_FLOAT_TEXT.fullmatch(text):
        value = float.fromhex(text)
    else:
        return None
    return None if math.isinf(value) else value  # Go reports overflow as an error


@dataclass(frozen=True, slots=True)
class Matcher:
    """One PromQL label matcher such as ``code=~"5.."``; regexes match the whole value."""

    name: str
    op: str
    value: str

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")  # a missing label is the empty string
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        found = _compiled(self.value).fullmatch(actual) is not None
        return found if self.op == "=~" else not found


def parse_matchers(text: str) -> list[Matcher]:
    """Matchers from PromQL text without braces: ``'namespace="prod", code=~"5.."'``.

    The text is read by the one label-matcher parser (``policy.label_matchers``, PromQL's
    string rules), so the scraper and the Prometheus path read a selector alike.
    Raises ``ValueError`` naming the first part it cannot read, or a bad regex.
    """
    out: list[Matcher] = []
    for name, op, value in label_matchers(text):
        if op in ("=~", "!~"):
            try:
                _compiled(value)
            except re.error as exc:
                raise ValueError(f"invalid regex {value!r} for label {name}: {exc}") from None
        out.append(Matcher(name, op, value))
    return out


_REGEX_CACHE: dict[str, re.Pattern[str]] = {}


def _compiled(pattern: str) -> re.Pattern[str]:
    compiled = _REGEX_CACHE.get(pattern)
    if compiled is None:
        compiled = re.compile(pattern, re.DOTALL)  # RE2 in Prometheus: "." matches newlines too
        if len(_REGEX_CACHE) < 256:
            _REGEX_CACHE[pattern] = compiled
    return compiled
