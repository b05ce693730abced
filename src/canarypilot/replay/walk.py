"""Walking a range's slices in analysis intervals: what the engine would have said, and when.

The slices are the live analysis' own (``fetch.fetch_slices``): the same grid,
the same ``increase`` per slice, read once for the whole range. At each instant
``t`` (every ``interval`` seconds) the walker gives the engine the
``StepHistory`` a live analysis would have had:

* only slices that had *ended at least ``lag`` before* ``t``
  (``Slicing.lag_seconds``, as the live providers cut them), so no verdict rests
  on data that was not yet scraped;
* the slices since the step in force began. The router's weight changes are
  facts of the recorded past, found afterwards from the traffic
  (``steps.find_steps`` and ``steps.refine``): a slice from before a change is
  never judged as the new step's, as the controller that made the change would
  not have judged it;
* its snapshot summed by the providers' own ``summarize``.

The engine is ``analysis.decide`` — the one every entry point calls. Policies
are compared by walking the same slices once per settings.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

import numpy as np

from canarypilot.analysis import decide as engine_decide
from canarypilot.metrics.history import Slicing, summarize
from canarypilot.model import Slice, Snapshot, StepHistory, Verdict, VersionStats
from canarypilot.policy import Settings
from canarypilot.replay.steps import Step, find_steps, observed_weight, refine

Decide = Callable[[StepHistory, Settings], Verdict]


@dataclass(frozen=True, slots=True)
class Instant:
    """One replayed analysis."""

    at: float
    release: int
    weight: float
    since: float
    #: End of the newest slice the engine saw (always ``<= at - lag``).
    seen_until: float
    verdict: Verdict


class Walker:
    """A range's slices prepared for replays: the step structure, and when each slice counts."""

    def __init__(self, history: StepHistory, slicing: Slicing, *, interval: float) -> None:
        if interval <= 0:
            raise ValueError("the analysis interval must be positive")
        self.target = history.target
        self.slicing = slicing
        self.interval = interval
        self.start, self.end = history.since, history.at
        self.slices: tuple[Slice, ...] = history.slices
        self.canary = _requests(s.canary.requests for s in self.slices)
        self.stable = _requests(s.stable.requests for s in self.slices)
        starts = np.array([s.start for s in self.slices])
        found = refine(find_steps(self.canary, self.stable), self.canary, self.stable, starts, slicing.length)
        # Controllers change the weight when they analyse: each change goes on an analysis
        # instant (the nearest for an estimate inside a mixed slice, else the one at or
        # before the slice's start), so the instant of a change is judged as the new step's.
        self.steps: list[Step] = [replace(s, since=self._on_grid(s.since, nearest=s.mixed)) for s in found]
        self._until = [self._release_end(i) for i in range(len(self.steps))]
        self._ends = [s.end for s in self.slices]
        self._since = [s.since for s in self.steps]
        self._summed: tuple[tuple[float, int, int, float], Snapshot] | None = None

    def _on_grid(self, t: float, *, nearest: bool) -> float:
        units = (t - self.start) / self.interval
        return self.start + (round(units) if nearest else math.floor(units + 1e-9)) * self.interval

    def _release_end(self, i: int) -> float:
        """When step ``i``'s release ended: on the analysis instant at or before the end of
        its last slice with canary traffic; never, if a later step continues it."""
        step = self.steps[i]
        if i + 1 < len(self.steps) and self.steps[i + 1].release == step.release:
            return math.inf
        if step.last + 1 >= len(self.slices):
            return math.inf  # still running at the range's end
        return self._on_grid(self.slices[step.last].end, nearest=False)

    def instants(self) -> list[float]:
        """Analysis instants: every ``interval`` from the range's start to its end plus the lag."""
        count = int((self.end + self.slicing.lag_seconds - self.start) // self.interval)
        return [self.start + (i + 1) * self.interval for i in range(count)]

    def history_at(self, at: float, *, quantile: float = 0.99) -> StepHistory | None:
        """What the engine would have been given at ``at``; ``None`` outside a release."""
        found = self._at(at, quantile)
        return None if found is None else found[0]

    def _at(self, at: float, quantile: float) -> tuple[StepHistory, Step] | None:
        i = bisect.bisect_right(self._since, at) - 1  # the step in force at ``at``
        if i < 0:
            return None
        step = self.steps[i]
        if at >= self._until[i]:
            return None  # that release ended (canary or stable gone) by this instant
        last = min(step.last, bisect.bisect_right(self._ends, at - self.slicing.lag_seconds + 1e-9) - 1)
        if last < step.first:
            return None  # nothing complete since the weight changed: nothing to judge yet
        slices = self.slices[step.first : last + 1]
        newest = max((s.end for s in slices if s.canary.requests is not None), default=None)
        age = None if newest is None else at - newest
        # Two instants that see the same slices sum them the same way: only ``at`` and the
        # age differ (with 30 s slices and 15 s analyses, every other instant).
        key = (step.since, step.first, last, quantile)
        if self._summed is None or self._summed[0] != key:
            summed = summarize(self.target, slices, since=step.since, at=at, quantile=quantile, age=age)
            self._summed = (key, summed)
        snapshot = replace(self._summed[1], at=at, age_seconds=age)
        canary_n = snapshot.canary.requests or 0.0
        stable_n = snapshot.stable.requests or 0.0
        history = StepHistory(
            target=self.target,
            weight=observed_weight(canary_n, canary_n + stable_n),
            since=step.since,
            at=at,
            slices=slices,
            snapshot=snapshot,
            scrape_interval=self.slicing.scrape_interval,
        )
        return history, step

    def stats(self, a: int, b: int, *, quantile: float = 0.99) -> tuple[VersionStats, VersionStats]:
        """Stable's and the canary's totals over slices ``[a, b)``."""
        since = self.slices[a].start if a < len(self.slices) else self.end
        snap = summarize(self.target, self.slices[a:b], since=since, at=self.end, quantile=quantile, age=None)
        return snap.stable, snap.canary

    def totals(self, a: int, b: int) -> tuple[float, float]:
        """The canary's requests and both versions' over slices ``[a, b)`` (for its share)."""
        canary = float(np.nansum(self.canary[a:b]))
        return canary, canary + float(np.nansum(self.stable[a:b]))

    def run(self, settings: Settings, decide: Decide = engine_decide) -> list[Instant]:
        """Every analysis of the range under ``settings``."""
        out: list[Instant] = []
        for at in self.instants():
            found = self._at(at, settings.query.quantile)
            if found is None:
                continue
            history, step = found
            verdict = decide(history, settings)
            out.append(
                Instant(at, step.release, history.weight, history.since, history.slices[-1].end, verdict)
            )
        return out


def _requests(values: Iterable[float | None]) -> np.ndarray:
    return np.array([math.nan if v is None else float(v) for v in values], dtype=float)
