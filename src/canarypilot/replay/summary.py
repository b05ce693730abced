"""What a replay found: per release and per policy, when it would have held or rolled back.

A *release* is a run of slices during which both versions served traffic; its
*steps* are the weights the canary's share shows (``steps.py``). How it ended
is read from the data too: the canary gone (rolled back, or torn down), stable
gone (promoted), or still running when the range ends.

*Bad requests spared* by a rollback at ``t`` are counted from the recorded
data from ``t`` to the release's end: the canary's errors beyond stable's error
rate, plus its requests slower than stable's p99 times ``1 + max_latency_delta``
(rounded up to a bucket bound) beyond stable's own share of such requests. It
is an estimate: after a real rollback nobody would have recorded them.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Any

from canarypilot.model import Action
from canarypilot.policy import Settings
from canarypilot.replay.steps import observed_weight
from canarypilot.replay.walk import Instant, Walker


@dataclass(frozen=True, slots=True)
class StepInfo:
    start: float
    end: float
    weight: float


@dataclass(frozen=True, slots=True)
class Release:
    index: int
    start: float
    end: float
    steps: tuple[StepInfo, ...]
    #: ``canary removed``, ``promoted`` (stable gone) or ``running`` at the range's end.
    recorded_end: str


@dataclass(frozen=True, slots=True)
class Outcome:
    """One policy on one release."""

    release: int
    first_hold: float | None
    first_rollback: float | None
    spared_bad_requests: float | None
    analyses: int

    @property
    def verdict(self) -> str:
        return "rollback" if self.first_rollback is not None else "let through"


@dataclass(frozen=True, slots=True)
class PolicyReplay:
    config: str
    settings: Settings
    instants: tuple[Instant, ...]
    outcomes: tuple[Outcome, ...]


def releases(walker: Walker) -> list[Release]:
    """The recorded releases and their steps."""
    out: list[Release] = []
    grouped: dict[int, list[StepInfo]] = {}
    lasts: dict[int, int] = {}
    for step in walker.steps:
        canary, total = walker.totals(step.first, step.last + 1)
        info = StepInfo(step.since, walker.slices[step.last].end, observed_weight(canary, total))
        grouped.setdefault(step.release, []).append(info)
        lasts[step.release] = step.last
    for index, steps in grouped.items():
        after = lasts[index] + 1
        if after >= len(walker.slices):
            how = "running"
        else:
            stable_after = walker.stable[after]
            how = "promoted" if math.isnan(stable_after) or stable_after == 0 else "canary removed"
        out.append(Release(index, steps[0].start, steps[-1].end, tuple(steps), how))
    return out


def replay_policy(walker: Walker, config: str, settings: Settings) -> PolicyReplay:
    instants = walker.run(settings)
    outcomes = []
    for release in releases(walker):
        mine = [i for i in instants if i.release == release.index]
        hold = next((i.at for i in mine if i.verdict.action is Action.HOLD), None)
        rollback = next((i.at for i in mine if i.verdict.action is Action.ROLLBACK), None)
        spared = None if rollback is None else spared_bad_requests(walker, settings, rollback, release.end)
        outcomes.append(Outcome(release.index, hold, rollback, spared, len(mine)))
    return PolicyReplay(config, settings, tuple(instants), tuple(outcomes))


def spared_bad_requests(walker: Walker, settings: Settings, start: float, end: float) -> float:
    a = bisect.bisect_left([s.start for s in walker.slices], start - 1e-9)
    b = bisect.bisect_right([s.end for s in walker.slices], end + 1e-9)
    if b <= a:
        return 0.0
    stable, canary = walker.stats(a, b)
    if not canary.requests or not stable.requests:
        return 0.0
    n = canary.requests
    bad = max(0.0, (canary.error_rate or 0.0) - (stable.error_rate or 0.0)) * n
    if stable.p99_seconds and canary.latency_buckets and stable.latency_buckets:
        limit = stable.p99_seconds * (1 + settings.slo.max_latency_delta)
        bounds = [bound for bound, _ in canary.latency_buckets]
        j = min(bisect.bisect_left(bounds, limit), len(bounds) - 1)
        slow_canary = n - canary.latency_buckets[j][1]
        slow_share = 1 - stable.latency_buckets[j][1] / stable.requests
        bad += max(0.0, slow_canary - slow_share * n)
    return round(bad)


def to_json(
    walker: Walker, found: list[Release], policies: list[PolicyReplay], queries: int
) -> dict[str, Any]:
    return {
        "service": walker.target.service,
        "from": walker.start,
        "to": walker.end,
        "slice_seconds": walker.slicing.length,
        "queries": queries,
        "canary_version": walker.target.canary_version,
        "stable_version": walker.target.stable_version,
        "releases": [
            {
                "release": r.index,
                "start": r.start,
                "end": r.end,
                "recorded_end": r.recorded_end,
                "steps": [{"start": s.start, "end": s.end, "weight": _number(s.weight)} for s in r.steps],
            }
            for r in found
        ],
        "policies": [
            {
                "config": p.config,
                "releases": [
                    {
                        "release": o.release,
                        "verdict": o.verdict,
                        "first_hold": o.first_hold,
                        "first_rollback": o.first_rollback,
                        "spared_bad_requests": o.spared_bad_requests,
                        "analyses": o.analyses,
                    }
                    for o in p.outcomes
                ],
                "timeline": [_row(i) for i in p.instants],
            }
            for p in policies
        ],
    }


def _row(i: Instant) -> dict[str, Any]:
    d = i.verdict.decision
    return {
        "at": i.at,
        "release": i.release,
        "weight": _number(i.weight),
        "since": i.since,
        "seen_until": i.seen_until,
        "action": i.verdict.action.value,
        "safe_weight": _number(d.safe_weight),
        "latency_delta": _number(d.latency_delta),
        "error_delta": _number(d.error_delta),
        "canary": d.canary.to_dict(),
        "stable": d.stable.to_dict(),
        "reason": (i.verdict.reasons or d.reasons or ("",))[-1],
    }


def _number(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value
