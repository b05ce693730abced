"""The seam between the judge and wherever the numbers come from."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from canarypilot.metrics.history import Slicing, StepQuery
from canarypilot.model import Snapshot, StepHistory, Target


@runtime_checkable
class MetricsProvider(Protocol):
    """Anything that can measure a stable and a canary version over a window.

    ``snapshot`` raises ``MetricsUnavailable`` when the backend cannot answer
    and ``QueryError`` when it rejects the query; missing series are reported as
    ``None`` values in the snapshot, never as zeros.
    """

    async def snapshot(self, target: Target, *, window_seconds: float | None = None) -> Snapshot:
        """Measure both versions now; ``window_seconds`` overrides the configured window
        (the controller shrinks it so it never reaches back before the last weight change)."""
        ...

    async def history(
        self,
        target: Target,
        *,
        weight: float,
        slicing: Slicing,
        since: float | None = None,
        at: float | None = None,
    ) -> StepHistory:
        """What both versions did since ``since`` (the last weight change; ``None``: find it from
        the canary's share of requests), cut into ``slicing``'s slices, as scraped by ``at``
        (default: now) less the lag. Same errors as ``snapshot``."""
        ...

    async def is_online(self) -> bool: ...


@runtime_checkable
class BatchMetricsProvider(MetricsProvider, Protocol):
    """A provider that measures many targets with a constant number of queries."""

    async def snapshot_many(
        self, targets: Sequence[Target], *, window_seconds: float | None = None
    ) -> Mapping[Target, Snapshot]: ...

    async def history_many(
        self, steps: Sequence[StepQuery], *, slicing: Slicing, at: float | None = None
    ) -> Mapping[Target, StepHistory]: ...
