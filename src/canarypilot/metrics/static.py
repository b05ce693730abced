"""A provider of fixed or scripted snapshots, for tests and the simulator."""

from __future__ import annotations

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
        slices = tuple(
            Slice(end - slicing.length, end, _scaled(self.stable, share), _scaled(self.canary, share))
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


def _scaled(stats: VersionStats, share: float) -> SliceCounts:
    if stats.requests is None:
        return SliceCounts(None, None)
    requests = stats.requests * share
    errors = None if stats.error_rate is None else requests * stats.error_rate
    buckets = None
    if stats.latency_buckets is not None:
        buckets = tuple((bound, count * share) for bound, count in stats.latency_buckets)
    return SliceCounts(requests, errors, buckets)
