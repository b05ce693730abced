"""A provider of fixed or scripted snapshots, for tests and the simulator."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from canarypilot._exceptions import MetricsUnavailable
from canarypilot.model import Snapshot, Target, VersionStats


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

    async def is_online(self) -> bool:
        return self.online
