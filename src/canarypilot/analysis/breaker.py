"""The circuit breaker: decisions in, actions out, so one bad scrape never rolls back.

Rules (defaults in ``BreakerPolicy`` and ``SLOPolicy``):

* a ``proceed`` decision clears the count of violations in a row;
* a ``hold`` decision keeps the count as it is;
* a violation is judged only on a window that starts after the previous
  violation was judged (separate evidence, never the same samples read twice);
  on an overlapping window it holds, uncounted;
* a violation *counts* when it is beyond the noise of its sample (the lower
  confidence bound of the delta is above zero, see ``evidence.py``);
  ``consecutive_violations`` counted violations in a row roll back;
* a violation within the noise holds; ``sign_test_windows`` separate windows in
  a row above a threshold roll back even so (a sign test: a canary within the
  SLO reads above it at most about half the time), so a canary too thin on
  traffic to ever be "beyond the noise" cannot hold forever;
* a severe violation (``severe_factor`` times a threshold) rolls back at once
  when the evidence is conclusive: even the lower confidence bound is severe,
  with enough samples. A p99 from a few hundred requests, or a ten-second
  latency spike in a short window, is not enough to skip the two-in-a-row
  rule; 50 % errors are;
* a violation whose whole confidence interval lies beyond its threshold
  (``conclusive_violation``) rolls back at once (``conclusive_at_once``): the
  second window is a guard against noise, and such a reading is beyond it.
  Latency needs ``conclusive_tail_requests`` canary requests beyond the
  quantile for that (the interval leans on an assumed tail shape);
* neither one-window rule trusts an ``exceedance`` latency interval (from the
  histograms): it counts every slow canary request, so a ten-second stall
  inside a window is as conclusive there as a regression, severe even; only a
  second, separate window tells them apart. It decides whether a violation
  counts, and when a canary passes conclusively;
* a latency violation judged on a window that reaches into the
  ``warmup_seconds`` after a weight change neither counts nor rolls back
  (cache warm-up); error violations always count;
* metrics unavailable: hold, and roll back once the outage lasts longer than
  ``metrics_outage_seconds`` (fail toward stable).

Without ``evidence`` every violation is taken at face value (beyond the noise
and conclusive), and without ``window_start`` the window is taken to end where
it starts, at ``now``: the rules of the article's point estimates.

The state is a frozen value passed in and returned, so the controller can
persist it and the simulator can replay it; nothing here reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from canarypilot.analysis.evidence import Evidence
from canarypilot.model import Action, Decision, Status, Verdict, Violation, ViolationKind
from canarypilot.policy import BreakerPolicy

_DEFAULT = BreakerPolicy()
#: Window edges closer than this are the same instant (float arithmetic on timestamps).
_EDGE = 1e-6


@dataclass(frozen=True, slots=True)
class BreakerState:
    """What the breaker remembers between decisions.

    ``consecutive`` counts violations beyond the noise, ``above`` every separate window
    in a row that read above a threshold (beyond the noise or not); ``evidence_until``
    is when the last of them was judged: the next one counts only on a window that
    starts at or after it.
    """

    consecutive: int = 0
    outage_since: float | None = None
    evidence_until: float | None = None
    above: int = 0


def assess(
    decision: Decision,
    state: BreakerState,
    *,
    now: float,
    last_weight_change: float | None,
    policy: BreakerPolicy = _DEFAULT,
    evidence: Evidence | None = None,
    window_start: float | None = None,
) -> tuple[Verdict, BreakerState]:
    """Turn one decision into an action, given what came before.

    ``evidence`` (from ``evidence.weigh``) tells noise from signal; ``window_start``
    is where the decision's window began (default ``now``).
    """
    state = replace(state, outage_since=None)
    if decision.status is Status.PROCEED:
        verdict = Verdict(Action.PROCEED, decision.weight, decision, decision.reasons, 0)
        return verdict, replace(state, consecutive=0, above=0, evidence_until=None)
    if decision.status is Status.HOLD:
        return (
            Verdict(Action.HOLD, None, decision, decision.reasons, state.consecutive),
            state,
        )

    start = now if window_start is None else window_start
    in_warmup = last_weight_change is not None and start - last_weight_change < policy.warmup_seconds
    eligible = [v for v in decision.violations if not (in_warmup and v.kind is ViolationKind.LATENCY)]

    def hold(*why: str) -> tuple[Verdict, BreakerState]:
        reasons = (*decision.reasons, *why)
        return Verdict(Action.HOLD, None, decision, reasons, state.consecutive), state

    if not eligible:
        return hold(
            f"the window reaches into the {policy.warmup_seconds:g}s warm-up after a weight change: "
            "latency-only violation held, not counted"
        )

    notes = [_describe(v, evidence) for v in eligible]
    if any(v.severe and _conclusive_severe(v, evidence) for v in eligible):
        count = state.consecutive + 1
        reasons = (*decision.reasons, *notes, "severe violation, conclusive evidence: rolling back at once")
        new_state = replace(state, consecutive=count, above=state.above + 1, evidence_until=now)
        return Verdict(Action.ROLLBACK, 0.0, decision, reasons, count), new_state

    if policy.conclusive_at_once and any(_conclusive(v, evidence, policy) for v in eligible):
        count = state.consecutive + 1
        at_once = "conclusive violation: even the favourable end of the interval breaks the threshold"
        reasons = (*decision.reasons, *notes, f"{at_once}; rolling back at once")
        new_state = replace(state, consecutive=count, above=state.above + 1, evidence_until=now)
        return Verdict(Action.ROLLBACK, 0.0, decision, reasons, count), new_state

    if state.evidence_until is not None and start < state.evidence_until - _EDGE:
        return hold(
            *notes,
            "judged on samples the previous violation already counted: held, not counted "
            f"(violation {state.consecutive} of {policy.consecutive_violations} stands)",
        )
    counted = any(_beyond_noise(v, evidence) for v in eligible)
    count = state.consecutive + (1 if counted else 0)
    above = state.above + 1
    new_state = replace(state, consecutive=count, above=above, evidence_until=now)

    def act(action: Action, *why: str) -> tuple[Verdict, BreakerState]:
        weight = 0.0 if action is Action.ROLLBACK else None
        return Verdict(action, weight, decision, (*decision.reasons, *notes, *why), count), new_state

    if counted and count >= policy.consecutive_violations:
        return act(
            Action.ROLLBACK,
            f"{count} violations in a row (limit {policy.consecutive_violations}): rolling back",
        )
    if above >= policy.sign_test_windows:
        return act(
            Action.ROLLBACK,
            f"{above} separate windows in a row above the threshold (limit {policy.sign_test_windows}): "
            "a canary within the SLO would read above it at most half the time; rolling back",
        )
    if counted:
        return act(Action.HOLD, f"violation {count} of {policy.consecutive_violations}: holding the weight")
    return act(
        Action.HOLD,
        f"within the noise of the sample: not counted; window {above} of {policy.sign_test_windows} "
        "in a row above the threshold",
    )


def _beyond_noise(violation: Violation, evidence: Evidence | None) -> bool:
    signal = None if evidence is None else evidence.of(violation.kind)
    return signal is None or signal.beyond_noise


def _conclusive(violation: Violation, evidence: Evidence | None, policy: BreakerPolicy) -> bool:
    """Conclusive evidence is never assumed: without intervals the two-window rule applies.

    A latency interval leans on an assumed tail shape, so it is trusted alone only with
    ``conclusive_tail_requests`` canary requests beyond the quantile.
    """
    signal = None if evidence is None else evidence.of(violation.kind)
    if signal is None or not signal.conclusive_violation:
        return False
    if violation.kind is ViolationKind.ERRORS:
        return True
    return signal.method != "exceedance" and signal.samples >= policy.conclusive_tail_requests


def _conclusive_severe(violation: Violation, evidence: Evidence | None) -> bool:
    signal = None if evidence is None else evidence.of(violation.kind)
    if signal is not None and signal.method == "exceedance":
        return False  # a stall or a regression: the next window tells
    return signal is None or signal.conclusive_severe


def _describe(violation: Violation, evidence: Evidence | None) -> str:
    signal = None if evidence is None else evidence.of(violation.kind)
    if signal is None:
        return f"{violation.kind.value}: taken at face value"
    if signal.conclusive_severe:
        verdict = "conclusively severe"
    elif signal.conclusive_violation:
        verdict = "conclusive"
    elif signal.beyond_noise:
        verdict = "beyond the noise"
    else:
        verdict = "within the noise"
    return f"{signal.describe()}: {verdict}"


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
