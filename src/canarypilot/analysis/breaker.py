"""The circuit breaker: decisions in, actions out, so one bad scrape never rolls back.

Rules (defaults in ``BreakerPolicy``):

* a ``proceed`` decision clears the count of violations in a row;
* a ``hold`` decision keeps the count as it is;
* a violation first holds; ``consecutive_violations`` in a row roll back;
* a severe violation (``severe_factor`` times a threshold) rolls back at once;
* during ``warmup_seconds`` after a weight change, latency-only violations hold
  and are not counted (cache warm-up); error violations always count;
* metrics unavailable: hold, and roll back once the outage lasts longer than
  ``metrics_outage_seconds`` (fail toward stable).

The state is a frozen value passed in and returned, so the controller can
persist it and the simulator can replay it; nothing here reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from canarypilot.model import Action, Decision, Status, Verdict, ViolationKind
from canarypilot.policy import BreakerPolicy

_DEFAULT = BreakerPolicy()  # type: ignore[call-arg]


@dataclass(frozen=True, slots=True)
class BreakerState:
    """What the breaker remembers between decisions."""

    consecutive: int = 0
    outage_since: float | None = None


def assess(
    decision: Decision,
    state: BreakerState,
    *,
    now: float,
    last_weight_change: float | None,
    policy: BreakerPolicy = _DEFAULT,
) -> tuple[Verdict, BreakerState]:
    """Turn one decision into an action, given what came before."""
    state = replace(state, outage_since=None)
    if decision.status is Status.PROCEED:
        return Verdict(Action.PROCEED, decision.weight, decision, decision.reasons, 0), replace(
            state, consecutive=0
        )
    if decision.status is Status.HOLD:
        return (
            Verdict(Action.HOLD, None, decision, decision.reasons, state.consecutive),
            state,
        )

    kinds = {v.kind for v in decision.violations}
    in_warmup = last_weight_change is not None and now - last_weight_change < policy.warmup_seconds
    if in_warmup and kinds == {ViolationKind.LATENCY}:
        reasons = (
            *decision.reasons,
            f"within the {policy.warmup_seconds:g}s warm-up after a weight change: "
            "latency-only violation held, not counted",
        )
        return Verdict(Action.HOLD, None, decision, reasons, state.consecutive), state

    severe = [v for v in decision.violations if v.severe]
    count = state.consecutive + 1
    new_state = replace(state, consecutive=count)
    if severe:
        reasons = (*decision.reasons, "severe violation: rolling back at once")
        return Verdict(Action.ROLLBACK, 0.0, decision, reasons, count), new_state
    if count >= policy.consecutive_violations:
        reasons = (
            *decision.reasons,
            f"{count} violations in a row (limit {policy.consecutive_violations}): rolling back",
        )
        return Verdict(Action.ROLLBACK, 0.0, decision, reasons, count), new_state
    reasons = (
        *decision.reasons,
        f"violation {count} of {policy.consecutive_violations}: holding the weight",
    )
    return Verdict(Action.HOLD, None, decision, reasons, count), new_state


def assess_outage(
    state: BreakerState,
    *,
    now: float,
    error: str,
    policy: BreakerPolicy = _DEFAULT,
) -> tuple[Action, tuple[str, ...], BreakerState]:
    """The metrics backend failed: hold, or roll back once the outage is too long."""
    since = state.outage_since if state.outage_since is not None else now
    new_state = replace(state, outage_since=since)
    lasted = now - since
    if lasted > policy.metrics_outage_seconds:
        return (
            Action.ROLLBACK,
            (
                f"metrics unavailable for {lasted:.0f}s (limit {policy.metrics_outage_seconds:g}s): "
                f"failing toward stable; last error: {error}",
            ),
            new_state,
        )
    return (
        Action.HOLD,
        (f"metrics unavailable for {lasted:.0f}s: holding; {error}",),
        new_state,
    )
