"""Walking a recording in analysis intervals: what the engine would have said, and when.

At each instant ``t`` (every ``interval`` seconds) the walker gives the engine
exactly what a live analysis would have had:

* only slices *settled* by ``t``: their newest sample scraped at least ``lag``
  before ``t`` (``Recording.visible_at``), and their end passed by as much, so
  no verdict ever rests on data that was not yet queryable;
* the step in force at ``t``: the router's weight changes are facts of the
  recorded past, found afterwards from the traffic (``steps.find_steps``), so
  a slice from before the last change is never judged as the new step's, as
  the controller that made the change would not have judged it;
* the slices since the current step began, as a ``StepHistory`` — the engine's
  one input — with its snapshot summed over the step.

The engine is ``decide(history, settings) -> Verdict``. Policies are compared
by walking the same recording once per settings; the recording, the slices and
the step structure are shared.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from canarypilot.analysis import BreakerState, assess, weigh
from canarypilot.api import decide as judge_snapshot
from canarypilot.metrics import promql
from canarypilot.model import (
    Action,
    Slice,
    SliceCounts,
    Snapshot,
    StepHistory,
    Target,
    Verdict,
    VersionStats,
)
from canarypilot.policy import Settings
from canarypilot.replay.recording import Recording, VersionCounts
from canarypilot.replay.steps import Step, find_steps, observed_weight

Decide = Callable[[StepHistory, Settings], Verdict]


def step_verdict(history: StepHistory, settings: Settings) -> Verdict:
    """Interim engine until ``analysis.decide`` (issue 10) lands: judge the step's slices
    clear of the warm-up (all of them while it lasts), weigh the evidence and apply the
    breaker's one-window rules from a fresh state."""
    clear = history.since + settings.breaker.warmup_seconds
    later = [s for s in history.slices if s.start >= clear]
    snapshot, start = history.snapshot, history.since
    if later:
        start = later[0].start
        target = history.target
        stats = [
            _summed(version, [getattr(s, side) for s in later], settings.query.quantile)
            for version, side in ((target.stable_version, "stable"), (target.canary_version, "canary"))
        ]
        snapshot = replace(snapshot, stable=stats[0], canary=stats[1], window_seconds=history.at - start)
    return judge_window(history, snapshot, start, settings)


def judge_window(history: StepHistory, snapshot: Snapshot, start: float, settings: Settings) -> Verdict:
    """The interim engine's core: judge ``snapshot`` (the step's slices from ``start``)."""
    decision = judge_snapshot(snapshot, settings)
    evidence = weigh(decision, quantile=settings.query.quantile, slo=settings.slo)
    verdict, _ = assess(
        decision,
        BreakerState(),
        now=history.at,
        last_weight_change=history.since,
        policy=settings.breaker,
        evidence=evidence,
        window_start=start,
    )
    return verdict


def _summed(version: str, counts: Sequence[SliceCounts], quantile: float) -> VersionStats:
    present = [c for c in counts if c.requests is not None]
    if not present:
        return VersionStats(version)
    requests = sum(c.requests or 0.0 for c in present)
    errors = sum(c.errors or 0.0 for c in present)
    histograms = [c.buckets for c in present if c.buckets]
    pairs = None
    p99 = None
    if histograms:
        totals = np.sum([[n for _, n in h] for h in histograms], axis=0).tolist()
        pairs = tuple(zip([b for b, _ in histograms[0]], totals, strict=True))
        p99 = promql.histogram_quantile(quantile, pairs)
    rate = errors / requests if requests > 0 else math.nan
    return VersionStats(version, p99_seconds=p99, error_rate=rate, requests=requests, latency_buckets=pairs)


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
    """The recording of one service prepared for replays: slices, steps, prefix sums."""

    def __init__(self, recording: Recording, target: Target, *, lag: float, interval: float) -> None:
        if interval <= 0 or lag < 0:
            raise ValueError("the interval must be positive and the lag not negative")
        self.recording = recording
        self.target = target
        self.lag = lag
        self.interval = interval
        self.stable = recording.counts(target.stable_version)
        self.canary = recording.counts(target.canary_version)
        self.steps: list[Step] = find_steps(self.canary.requests, self.stable.requests)
        n = recording.slices
        ends = recording.origin + (np.arange(n) + 1) * recording.step
        newest = np.fmax(self.stable.visible_at, self.canary.visible_at)
        settled = np.fmax(ends, np.nan_to_num(newest, nan=-math.inf)) + lag
        self._settled = np.maximum.accumulate(settled).tolist()
        self._newest = np.fmax.accumulate(np.nan_to_num(newest, nan=-math.inf)).tolist()
        self._slices = tuple(self._slice(k) for k in range(n))
        self._sums = {v: _PrefixSums(c) for v, c in ((0, self.stable), (1, self.canary))}
        self._starts = [recording.edge(s.first) for s in self.steps]

    def _slice(self, k: int) -> Slice:
        r = self.recording
        return Slice(
            r.edge(k), r.edge(k + 1), _counts(self.stable, k, r.bounds), _counts(self.canary, k, r.bounds)
        )

    def instants(self) -> list[float]:
        """Analysis instants: every ``interval`` from the range's start to its end plus the lag."""
        r = self.recording
        count = int((r.end + self.lag - r.origin) // self.interval)
        return [r.origin + (i + 1) * self.interval for i in range(count)]

    def history_at(self, at: float, *, quantile: float = 0.99) -> StepHistory | None:
        """What the engine would have been given at ``at``; ``None`` outside a release."""
        found = self._at(at, quantile)
        return None if found is None else found[0]

    def _at(self, at: float, quantile: float) -> tuple[StepHistory, Step] | None:
        i = bisect.bisect_right(self._starts, at) - 1  # the step in force at ``at``
        if i < 0:
            return None
        step = self.steps[i]
        if self.recording.edge(step.last + 1) <= at:
            return None  # that release ended (canary or stable gone) before this instant
        last = min(step.last, bisect.bisect_right(self._settled, at) - 1)
        if last < step.first:
            return None  # nothing scraped since the weight changed: nothing to judge yet
        since = self.recording.edge(step.first)
        snapshot = self._snapshot(step.first, last + 1, at, since, quantile)
        canary_n = snapshot.canary.requests or 0.0
        stable_n = snapshot.stable.requests or 0.0
        weight = observed_weight(canary_n, canary_n + stable_n)
        history = StepHistory(
            target=self.target,
            weight=weight,
            since=since,
            at=at,
            slices=self._slices[step.first : last + 1],
            snapshot=snapshot,
            scrape_interval=self.recording.step,
        )
        return history, step

    def stats(self, a: int, b: int, *, quantile: float = 0.99) -> tuple[VersionStats, VersionStats]:
        """Stable's and the canary's totals over slices ``[a, b)``."""
        bounds = self.recording.bounds
        return (
            self._sums[0].stats(self.target.stable_version, a, b, bounds, quantile),
            self._sums[1].stats(self.target.canary_version, a, b, bounds, quantile),
        )

    def totals(self, a: int, b: int) -> tuple[float, float]:
        """The canary's requests and both versions' over slices ``[a, b)`` (for its share)."""
        canary = float(self._sums[1].requests[b] - self._sums[1].requests[a])
        return canary, canary + float(self._sums[0].requests[b] - self._sums[0].requests[a])

    def _snapshot(self, a: int, b: int, at: float, since: float, q: float) -> Snapshot:
        stable, canary = self.stats(a, b, quantile=q)
        newest = self._newest[b - 1]
        age = at - newest if math.isfinite(newest) else None
        return Snapshot(self.target, stable, canary, at=at, window_seconds=at - since, age_seconds=age)

    def run(self, settings: Settings, decide: Decide | None = None) -> list[Instant]:
        """Every analysis of the range under ``settings`` (``decide``: the interim engine,
        ``step_verdict``, on the walker's prefix sums)."""
        out: list[Instant] = []
        for at in self.instants():
            found = self._at(at, settings.query.quantile)
            if found is None:
                continue
            history, step = found
            verdict = self._interim(history, step, settings) if decide is None else decide(history, settings)
            seen = history.slices[-1].end if history.slices else history.since
            out.append(Instant(at, step.release, history.weight, history.since, seen, verdict))
        return out

    def _interim(self, history: StepHistory, step: Step, settings: Settings) -> Verdict:
        """``step_verdict`` in constant time per instant: the window clear of the warm-up
        summed from the prefix sums instead of slice by slice."""
        rec = self.recording
        first = step.first + max(0, math.ceil(settings.breaker.warmup_seconds / rec.step - 1e-9))
        end = step.first + len(history.slices)
        if first >= end:
            return judge_window(history, history.snapshot, history.since, settings)
        stable, canary = self.stats(first, end, quantile=settings.query.quantile)
        start = rec.edge(first)
        window = replace(history.snapshot, stable=stable, canary=canary, window_seconds=history.at - start)
        return judge_window(history, window, start, settings)


class _PrefixSums:
    def __init__(self, counts: VersionCounts) -> None:
        present = counts.present()
        self.present = np.concatenate([[0], np.cumsum(present)])
        self.requests = np.concatenate([[0.0], np.cumsum(np.nan_to_num(counts.requests))])
        self.errors = np.concatenate([[0.0], np.cumsum(np.nan_to_num(counts.errors))])
        self.buckets = (
            None
            if counts.buckets is None
            else np.vstack(
                [np.zeros((1, counts.buckets.shape[1])), np.cumsum(np.nan_to_num(counts.buckets), axis=0)]
            )
        )

    def stats(self, version: str, a: int, b: int, bounds: Sequence[float], quantile: float) -> VersionStats:
        if self.present[b] - self.present[a] == 0:
            return VersionStats(version)
        requests = float(self.requests[b] - self.requests[a])
        errors = float(self.errors[b] - self.errors[a])
        pairs: tuple[tuple[float, float], ...] | None = None
        p99: float | None = None
        if self.buckets is not None:
            counts = (self.buckets[b] - self.buckets[a]).tolist()
            pairs = tuple(zip(bounds, counts, strict=True))
            p99 = promql.histogram_quantile(quantile, pairs)
        rate = errors / requests if requests > 0 else math.nan
        return VersionStats(
            version, p99_seconds=p99, error_rate=rate, requests=requests, latency_buckets=pairs
        )


def _counts(counts: VersionCounts, k: int, bounds: Sequence[float]) -> SliceCounts:
    requests = float(counts.requests[k])
    if math.isnan(requests):
        return SliceCounts(None, None, None)
    buckets = None
    if counts.buckets is not None and not math.isnan(counts.buckets[k, -1]):
        buckets = tuple(zip(bounds, counts.buckets[k].tolist(), strict=True))
    return SliceCounts(requests, float(counts.errors[k]), buckets)


def first(instants: Sequence[Instant], action: Action, release: int) -> Instant | None:
    """The first instant of ``release`` with ``action``."""
    return next((i for i in instants if i.release == release and i.verdict.action is action), None)
