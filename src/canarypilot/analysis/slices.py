"""Which slices of a step can be read, and how many a verdict needs.

A slice is usable when both versions' request counts are there, finite and not
negative; a missing series is skipped and said, never read as zero. The step is stale
when its newest usable slice ended longer than ``max_sample_age_seconds`` before the
evaluation: then nothing may proceed on it (a rollback on what was seen stays possible).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from canarypilot.model import Slice, SliceCounts, StepHistory


@dataclass(frozen=True, slots=True)
class Cleaned:
    """The usable slices of a step, in order, and what was wrong with the others."""

    slices: tuple[Slice, ...]
    since: float
    problems: tuple[str, ...]
    #: Something that forbids proceeding: no usable slice, no canary request, stale data.
    blocking: bool


def _number(value: float | None) -> bool:
    return value is not None and math.isfinite(value) and value >= 0


def _usable(counts: SliceCounts) -> bool:
    return _number(counts.requests)


def clean(history: StepHistory, *, max_age: float) -> Cleaned:
    """The slices ``decide`` may read, with the reasons it may not read the others."""
    usable = tuple(s for s in history.slices if _usable(s.stable) and _usable(s.canary) and s.end > s.start)
    problems: list[str] = []
    skipped = len(history.slices) - len(usable)
    if skipped:
        problems.append(
            f"{skipped} of {len(history.slices)} slice(s) without a request series for both versions "
            "(missing or NaN is not zero): skipped"
        )
    blocking = False
    if not usable:
        problems.append("no usable slice since the weight changed: no data yet")
        blocking = True
    else:
        if sum(s.canary.requests or 0.0 for s in usable) <= 0:
            problems.append("the canary served no request since the weight changed")
            blocking = True
        age = history.at - usable[-1].end
        if age > max_age:
            problems.append(f"newest usable slice ended {age:.0f}s ago (limit {max_age:.0f}s): stale data")
            blocking = True
    return Cleaned(usable, history.since, tuple(problems), blocking)


def slice_seconds(cleaned: Cleaned, fallback: float) -> float:
    """The typical slice length: the median of the usable slices', else ``fallback``."""
    if not cleaned.slices:
        return fallback
    return statistics.median(s.end - s.start for s in cleaned.slices)


def min_slices(cleaned: Cleaned, max_transient: float, fallback_seconds: float) -> int:
    """Slices a rollback (and so any verdict) needs: a transient of ``max_transient`` seconds
    touches at most ``ceil(max_transient / slice) + 1`` slices, one more must be needed.

    >>> empty = Cleaned((), 0.0, (), True)
    >>> min_slices(empty, 20.0, 15.0), min_slices(empty, 20.0, 30.0), min_slices(empty, 0.0, 15.0)
    (4, 3, 1)
    """
    if max_transient <= 0:
        return 1
    length = max(1e-3, slice_seconds(cleaned, fallback_seconds))
    return math.ceil(max_transient / length - 1e-9) + 2
