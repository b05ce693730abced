"""A provider of fixed or scripted snapshots, for tests and the simulator."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from canarypilot._exceptions import MetricsUnavailable
from canarypilot.metrics.history import Slicing, StepQuery, summarize
from canarypilot.model import Slice, SliceCounts, Snapshot, StepHistory, Target, VersionStats


class StaticMetrics:
    """Answers with the stats it was given, or with ``MetricsUnavailable`` when offline.

    >>> import asyncio
    >>> m = StaticMetrics(VersionStats("v1-stable", 0.2, 0.0, 1000),
    ...                   VersionStats("v2-canary", 0.2, 0.0, 500))
    >>> asyncio.run(m.snapshot(Target("api"))).canary.requests
    500
    """

    def __init__(
        self,
        stable: VersionStats,
        canary: VersionStats,
        *,
        now: Callable[[], float] = lambda: 0.0,
        window_seconds: float = 300.0,
    ) -> None:
        self.stable = stable
        self.canary = canary
        self.online = True
        self.calls = 0
        self._now = now
        self._window = window_seconds

    async def snapshot(self, target: Target, *, window_seconds: float | None = None) -> Snapshot:
        self.calls += 1
        if not self.online:
            raise MetricsUnavailable("static metrics are offline")
        window = self._window if window_seconds is None else window_seconds
        return Snapshot(target, self.stable, self.canary, at=self._now(), window_seconds=window)

    async def snapshot_many(
        self, targets: Sequence[Target], *, window_seconds: float | None = None
    ) -> Mapping[Target, Snapshot]:
        if window_seconds is None:  # keep subclasses that override snapshot(target) working
            return {t: await self.snapshot(t) for t in targets}
        return {t: await self.snapshot(t, window_seconds=window_seconds) for t in targets}

    async def history(
        self,
        target: Target,
        *,
        weight: float,
        slicing: Slicing,
        since: float | None = None,
        at: float | None = None,
    ) -> StepHistory:
        """The stats spread evenly over the step: each slice holds ``length / window_seconds``
        of them, and the step's p99s are the given ones."""
        self.calls += 1
        if not self.online:
            raise MetricsUnavailable("static metrics are offline")
        at = self._now() if at is None else at
        begin = at - self._window if since is None else since
        ends = slicing.ends(begin, at)
        share = slicing.length / self._window
        grid = _bounds(self.stable, self.canary)
        slices = tuple(
            Slice(
                end - slicing.length,
                end,
                _scaled(self.stable, share, grid),
                _scaled(self.canary, share, grid),
            )
            for end in ends
        )
        summed = summarize(target, slices, since=begin, at=at, quantile=0.99, age=None)
        snapshot = replace(
            summed,
            stable=replace(summed.stable, p99_seconds=self.stable.p99_seconds),
            canary=replace(summed.canary, p99_seconds=self.canary.p99_seconds),
        )
        return StepHistory(
            target, weight, begin, at, slices, snapshot, scrape_interval=slicing.scrape_interval
        )

    async def history_many(
        self, steps: Sequence[StepQuery], *, slicing: Slicing, at: float | None = None
    ) -> Mapping[Target, StepHistory]:
        return {
            s.target: await self.history(s.target, weight=s.weight, slicing=slicing, since=s.since, at=at)
            for s in steps
        }

    async def is_online(self) -> bool:
        return self.online


def _scaled(stats: VersionStats, share: float, bounds: Sequence[float]) -> SliceCounts:
    if stats.requests is None:
        return SliceCounts(None, None)
    requests = stats.requests * share
    errors = None if stats.error_rate is None else requests * stats.error_rate
    buckets = None
    if stats.latency_buckets is not None:
        buckets = tuple((bound, count * share) for bound, count in stats.latency_buckets)
    elif stats.p99_seconds is not None and math.isfinite(stats.p99_seconds) and stats.p99_seconds > 0:
        buckets = histogram_with_p99(stats.p99_seconds, requests, bounds)
    return SliceCounts(requests, errors, buckets)


def histogram_with_p99(p99: float, count: float, bounds: Sequence[float]) -> tuple[tuple[float, float], ...]:
    """Cumulative buckets at ``bounds`` (plus ``+Inf``) of ``count`` latencies spread evenly:
    99 % up to ``p99``, the rest up to twice it. With ``p99`` among the bounds,
    ``histogram_quantile(0.99)`` gives ``p99`` exactly, and versions given the same bounds
    can be compared bucket by bucket.

    >>> histogram_with_p99(0.2, 100, [0.1, 0.2, 0.4])
    ((0.1, 49.5), (0.2, 99.0), (0.4, 100.0), (inf, 100))
    """

    def below(bound: float) -> float:
        if bound <= p99:
            return 0.99 * count * bound / p99
        return count * min(1.0, 0.99 + 0.01 * (bound - p99) / p99)

    return (*((b, below(b)) for b in sorted(set(bounds))), (math.inf, count))


def _bounds(*stats: VersionStats) -> list[float]:
    """Bucket bounds holding every version's p99 and twice it."""
    p99s = [s.p99_seconds for s in stats if s.p99_seconds is not None and math.isfinite(s.p99_seconds)]
    return sorted({b for p in p99s if p > 0 for b in (p, 2 * p)})
