"""Step histories: what both versions did since the last weight change, slice by slice.

The engine (``analysis.decide``) judges a ``StepHistory``: per-slice counts of both
versions since the canary's weight last changed. Every provider builds one the same
way, from the same grid and the same arithmetic, so a verdict never depends on where
the numbers came from:

* **The grid.** Slices are ``length`` seconds long and aligned to multiples of
  ``length`` since the epoch, not to the step's start: two analysis replicas (or one
  after a restart) cut the same slices, and one range query serves every service of a
  batch whatever its step's start. A slice counts when it lies wholly after ``since``
  and ended at least ``lag_seconds`` before the evaluation: only data that was
  scraped (and shipped, for remote write) by then.
* **The length** is ``slice_seconds``, never shorter than two scrape intervals: an
  ``increase`` needs two samples in its range. With 30 s scrapes and a 20 s lag the
  slices are 60 s long and the newest ends 20 s ago: late, but never empty (issue 10,
  cause 5).
* **The step's start**, when the caller does not know it (the Argo gate is stateless
  across replicas), is read from the data: the oldest slice of the trailing run whose
  canary share of requests agrees with the step's weight (``observed_since``).

The ``snapshot`` of a history is its slices summed: the p99 of the summed histogram,
error rates of the summed counts, for display and for the safe weight.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

from canarypilot._exceptions import ConfigError
from canarypilot.metrics import promql
from canarypilot.model import Slice, SliceCounts, Snapshot, StepHistory, Target, VersionStats
from canarypilot.policy import Settings

T = TypeVar("T")

#: Prometheus answers at most 11,000 points per series of a range query.
MAX_SLICES = 10_000

Key = tuple[str, str]
"""``(job, version)``: how every provider keys a series."""
PerSlice = Mapping[Key, Mapping[float, float]]
"""A value per slice end, per series."""
BucketsPerSlice = Mapping[Key, Mapping[float, Sequence[tuple[float, float]]]]
"""``(upper_bound, count)`` pairs per slice end, per series, in any order."""


@dataclass(frozen=True, slots=True)
class Slicing:
    """How a step is cut into slices.

    ``lookback_seconds`` bounds the search for the step's start when it is not given.
    ``measure_interval`` asks a provider that can (Prometheus) to measure the scrape
    interval from the data first; ``scrape_interval`` stands until it has.
    """

    slice_seconds: float = 30.0
    scrape_interval: float = 15.0
    lag_seconds: float = 15.0
    lookback_seconds: float = 1800.0
    measure_interval: bool = False

    def __post_init__(self) -> None:
        for name in ("slice_seconds", "scrape_interval", "lookback_seconds"):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise ConfigError(f"{name} must be a positive number of seconds, not {value!r}")
        if not math.isfinite(self.lag_seconds) or self.lag_seconds < 0:
            raise ConfigError(f"lag_seconds must be zero or more, not {self.lag_seconds!r}")

    @classmethod
    def from_settings(cls, settings: Settings) -> Slicing:
        """The slicing the settings describe: Prometheus' scrape interval when a URL is set
        (measured from the data when ``query.scrape_interval_seconds`` is unset), the
        embedded scraper's otherwise."""
        told = settings.query.scrape_interval_seconds
        prometheus = bool(settings.prometheus.url)
        interval = told or 15.0 if prometheus else settings.scrape.interval_seconds
        return cls(
            slice_seconds=settings.query.slice_seconds,
            scrape_interval=interval,
            lag_seconds=settings.rollout.scrape_lag_seconds,
            lookback_seconds=settings.service.step_lookback_seconds,
            measure_interval=prometheus and told is None,
        )

    @property
    def length(self) -> float:
        """At least two scrape intervals, in whole milliseconds (a PromQL range)."""
        return math.ceil(max(self.slice_seconds, 2 * self.scrape_interval) * 1000 - 1e-6) / 1000

    def ends(self, since: float, at: float) -> tuple[float, ...]:
        """The end of every slice wholly inside ``[since, at - lag]``, oldest first.

        >>> Slicing(slice_seconds=30, scrape_interval=15, lag_seconds=15).ends(1000, 1130)
        (1050.0, 1080.0, 1110.0)
        """
        length = self.length
        first = math.ceil((since + length) / length - 1e-9) * length
        last = math.floor((at - self.lag_seconds) / length + 1e-9) * length
        if last < first:
            return ()
        count = int(round((last - first) / length)) + 1
        if count > MAX_SLICES:
            raise ConfigError(
                f"a step of {at - since:g}s is {count} slices of {length:g}s, more than {MAX_SLICES}: "
                "raise query.slice_seconds"
            )
        return tuple(first + k * length for k in range(count))


@dataclass(frozen=True, slots=True)
class StepQuery:
    """One step to fetch: the pair of versions, the weight since ``since``, and ``since``
    itself (``None``: find it from the data, looking back ``Slicing.lookback_seconds``).
    A weight of ``None`` is read from the data too: the canary's share of the newest slice."""

    target: Target
    weight: float | None = None
    since: float | None = None

    def __post_init__(self) -> None:
        if self.weight is not None and (not math.isfinite(self.weight) or not 0 < self.weight <= 100):
            raise ConfigError(f"step weight {self.weight!r} is not in (0, 100]")


def one_per_target(items: Sequence[T], target: Callable[[T], Target]) -> list[list[T]]:
    """``items`` in calls to ``history_many``, whose answer is keyed by target: each call
    holds each pair of versions once, so steps of a pair asked differently go in later calls.

    >>> one_per_target(["a1", "b1", "a2"], lambda s: Target(s[0]))
    [['a1', 'b1'], ['a2']]
    """
    calls: list[list[T]] = []
    remaining = list(items)
    while remaining:
        group: list[T] = []
        later: list[T] = []
        seen: set[Target] = set()
        for item in remaining:
            (later if target(item) in seen else group).append(item)
            seen.add(target(item))
        calls.append(group)
        remaining = later
    return calls


@dataclass(frozen=True, slots=True)
class Fetched:
    """What a provider read for a batch of steps, keyed by ``(job, version)`` and slice end."""

    ends: tuple[float, ...]
    requests: PerSlice
    errors: PerSlice
    buckets: BucketsPerSlice | None
    newest: Mapping[Key, float]
    #: p99 per series over the whole range, for a custom latency template (no buckets).
    p99: Mapping[Key, float] | None = None


def fetch_range(steps: Sequence[StepQuery], slicing: Slicing, at: float) -> tuple[float, tuple[float, ...]]:
    """The oldest instant a batch needs and the slice ends covering all its steps."""
    starts = [s.since if s.since is not None else at - slicing.lookback_seconds for s in steps]
    oldest = min(starts)
    return oldest, slicing.ends(oldest, at)


def assemble(
    step: StepQuery,
    fetched: Fetched,
    slicing: Slicing,
    *,
    at: float,
    quantile: float,
    job: str | None = None,
) -> StepHistory:
    """The history of one step from a batch's data; ``job`` overrides the service's name
    as the series key (the scraper, told no name, keys every series with ``""``)."""
    target = step.target
    name = target.service if job is None else job
    stable_key, canary_key = (name, target.stable_version), (name, target.canary_version)
    all_slices = [
        _slice(end, slicing.length, stable_key, canary_key, fetched)
        for end in fetched.ends
        if step.since is None or end - slicing.length >= step.since - 1e-9
    ]
    since = step.since
    weight = step.weight if step.weight is not None else observed_weight(all_slices)
    if since is None:
        found = observed_since(all_slices, weight) if weight > 0 else None
        since = found if found is not None else at - slicing.lag_seconds
        all_slices = [s for s in all_slices if s.start >= since - 1e-9]
    slices = tuple(all_slices)
    stamps = [fetched.newest[k] for k in (stable_key, canary_key) if k in fetched.newest]
    age = max(0.0, at - min(stamps)) if stamps else None
    snapshot = summarize(target, slices, since=since, at=at, quantile=quantile, age=age)
    if fetched.p99 is not None:
        snapshot = _with_p99(snapshot, fetched.p99, stable_key, canary_key)
    return StepHistory(
        target=target,
        weight=weight,
        since=since,
        at=at,
        slices=slices,
        snapshot=snapshot,
        scrape_interval=slicing.scrape_interval,
    )


def _slice(end: float, length: float, stable: Key, canary: Key, fetched: Fetched) -> Slice:
    def counts(key: Key) -> SliceCounts:
        requests = fetched.requests.get(key, {}).get(end)
        errors = fetched.errors.get(key, {}).get(end)
        if requests is not None and errors is None:
            errors = 0.0  # requests but no 5xx series: no errors, as Prometheus reports it
        pairs = None if fetched.buckets is None else fetched.buckets.get(key, {}).get(end)
        buckets = None if pairs is None else promql.cumulative_counts(pairs, seconds=1.0)
        return SliceCounts(requests=requests, errors=errors, buckets=buckets)

    return Slice(start=end - length, end=end, stable=counts(stable), canary=counts(canary))


def summarize(
    target: Target, slices: Sequence[Slice], *, since: float, at: float, quantile: float, age: float | None
) -> Snapshot:
    """The slices summed into one snapshot: what an instant query over the step would read."""

    def total(version: str, pick: str) -> VersionStats:
        parts = [getattr(s, pick) for s in slices]
        seen = [p for p in parts if p.requests is not None]
        if not seen:
            return VersionStats(version)
        requests = sum(p.requests for p in seen)
        errors = sum(p.errors or 0.0 for p in seen)
        merged: dict[float, float] = {}
        for p in seen:
            for bound, count in p.buckets or ():
                merged[bound] = merged.get(bound, 0.0) + count
        histogram = promql.cumulative_counts(merged.items(), seconds=1.0) if merged else None
        p99 = promql.histogram_quantile(quantile, merged.items()) if merged else None
        return VersionStats(
            version,
            p99_seconds=p99,
            error_rate=errors / requests if requests > 0 else math.nan,
            requests=requests,
            latency_buckets=histogram,
        )

    window = (slices[-1].end - since) if slices else 0.0
    return Snapshot(
        target,
        total(target.stable_version, "stable"),
        total(target.canary_version, "canary"),
        at=at,
        window_seconds=window,
        age_seconds=age,
    )


def _with_p99(snapshot: Snapshot, p99: Mapping[Key, float], stable: Key, canary: Key) -> Snapshot:
    return replace(
        snapshot,
        stable=replace(snapshot.stable, p99_seconds=p99.get(stable)),
        canary=replace(snapshot.canary, p99_seconds=p99.get(canary)),
    )


def observed_weight(slices: Sequence[Slice]) -> float:
    """The canary's share of requests (percent) in the newest slice with traffic; 0 without."""
    for piece in reversed(slices):
        stable, canary = piece.stable.requests or 0.0, piece.canary.requests or 0.0
        if stable + canary > 0:
            return round(100.0 * canary / (stable + canary), 1)
    return 0.0


def observed_since(slices: Sequence[Slice], weight: float) -> float | None:
    """When the step began, read from the data: the start of the oldest slice of the newest
    run whose canary share of requests is consistent with ``weight`` %.

    Consistent means within three binomial standard deviations of the weight, plus a fifth
    of it for routers that place traffic by replicas or coarse weights. A slice without
    traffic on either version neither extends nor breaks the run. ``None`` when the newest
    slice with traffic does not agree (the step has not begun, in the data).

    >>> from canarypilot.model import Slice, SliceCounts
    >>> def s(t, stable, canary):
    ...     return Slice(t, t + 30, SliceCounts(stable, 0), SliceCounts(canary, 0))
    >>> observed_since([s(0, 950, 50), s(30, 900, 100), s(60, 890, 110)], 10)
    30
    """
    share = weight / 100.0
    start: float | None = None
    for piece in reversed(slices):
        stable, canary = piece.stable.requests, piece.canary.requests
        if stable is None and canary is None:
            continue
        total = (stable or 0.0) + (canary or 0.0)
        if total <= 0:
            continue
        seen = (canary or 0.0) / total
        spread = 3.0 * math.sqrt(max(share * (1 - share), 1e-9) / total) + 0.2 * min(share, 1 - share)
        if abs(seen - share) > spread + 1e-9:
            break
        start = piece.start
    return start
