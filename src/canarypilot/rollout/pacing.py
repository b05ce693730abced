"""When the controller may judge, on which window, and when a step may end.

The controller's state machine decides *what* to do; this module answers the
timing questions it asks on every tick, from the checkpoint alone (so a resumed
controller answers them the same way):

* **Where a window may start.** At the last weight change: samples stamped after
  it count only traffic at the current weight, because ``rate`` and
  ``increase`` use the samples inside their range. At the end of the breaker's
  warm-up after it, as soon as a window starting there is long enough: warm-up
  latency is not evidence. And, while a violation is pending, where that
  violation was judged: the next one must come from samples it did not see.
* **How long a window to ask for.** The most recent stretch expected to hold
  ``window_tail_requests`` canary requests beyond the quantile, at the traffic
  the last analysis measured — long at 5 %, short at 40 %, so a regression in
  the middle of a step is not diluted by minutes of older traffic.
* **When a step may end.** Its pause (``pauses_seconds``) unless a conclusive
  pass ends it earlier; the last step never before ``bake_fraction`` of the
  whole schedule has run.
"""

from __future__ import annotations

from typing import Any

from canarypilot.analysis import BreakerState
from canarypilot.policy import RolloutPolicy, Settings
from canarypilot.rollout.store import RolloutState


def evidence_until(state: RolloutState) -> float | None:
    """When the pending violation was judged (kept in the checkpoint's ``extra``)."""
    value = state.extra.get("evidence_until")
    return float(value) if isinstance(value, int | float) else None


def breaker_state(state: RolloutState) -> BreakerState:
    """The breaker's memory, from the checkpoint."""
    above = state.extra.get("above_threshold")
    return BreakerState(
        state.consecutive,
        state.outage_since,
        evidence_until(state),
        above if isinstance(above, int) else 0,
    )


def window_start(state: RolloutState, now: float, settings: Settings) -> float:
    """The earliest instant an analysis at ``now`` may look back to."""
    policy = settings.rollout
    changed = state.last_weight_change if state.last_weight_change is not None else state.started_at
    start = changed
    warm = changed + settings.breaker.warmup_seconds
    if now - warm - policy.scrape_lag_seconds >= policy.min_window_seconds:
        start = max(start, warm)
    pending = evidence_until(state)
    if pending is not None:
        start = max(start, pending)
    return start


def window_length(state: RolloutState, now: float, settings: Settings) -> float:
    """The window to judge at ``now``: recent enough, long enough, never before ``window_start``.

    The window guard (``min_window_seconds`` of it older than the scrape lag) is
    the controller's to apply: a shorter answer means "wait".
    """
    policy = settings.rollout
    longest = min(settings.query.window_seconds, now - window_start(state, now, settings))
    traffic = state.extra.get("traffic_rps")
    wanted = policy.window_tail_requests
    if not isinstance(traffic, int | float) or traffic <= 0 or wanted <= 0 or state.weight <= 0:
        return longest
    canary_rps = traffic * state.weight / 100.0
    enough = wanted / (1.0 - settings.query.quantile) / canary_rps + policy.scrape_lag_seconds
    floor = policy.min_window_seconds + policy.scrape_lag_seconds
    return min(longest, max(enough, floor))


def remember(
    state: RolloutState,
    breaker: BreakerState,
    *,
    canary_requests: float | None = None,
    window: float = 0.0,
) -> dict[str, Any]:
    """The checkpoint's ``extra`` after an analysis: the pending violation's time, and the
    traffic (requests per second of both versions, from the canary's share) that sizes
    later windows."""
    extra = dict(state.extra)
    if breaker.evidence_until is None:
        extra.pop("evidence_until", None)
    else:
        extra["evidence_until"] = breaker.evidence_until
    extra["above_threshold"] = breaker.above
    if canary_requests and state.weight > 0 and window > 0:
        extra["traffic_rps"] = canary_requests / window / (state.weight / 100.0)
    return extra


def step_ends(state: RolloutState, now: float, policy: RolloutPolicy) -> tuple[float, float]:
    """When the current step's pause ends, and before when it may not end at all.

    Some regressions come with time, not with traffic (a leak, a cron job, a cache
    expiring): early advances shorten the steps, never the bake time before 100 %.
    """
    pause_ends = state.step_started_at + policy.pauses_seconds[min(state.step, state.steps - 1)]
    last = state.step + 1 >= state.steps
    bake = policy.bake_fraction * sum(policy.pauses_seconds)
    return pause_ends, (state.started_at + bake if last else now)
