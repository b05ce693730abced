"""``decide``: one step's history in, one verdict out — the engine every entry point calls.

The verdict is a pure function of the ``StepHistory`` (the slices since the canary's
weight last changed) and the settings: no memory between calls, no clock. The Argo gate
on either replica, the controller, replay and the simulator therefore agree by
construction. See docs/decision-model.md for the meaning of each rule.

* **rollback** — an anytime-valid test (``sequential.py``) rejects "the canary is within
  the SLO" at level ``slo.alpha``, on errors or on latency;
* **hold** — no data, stale data, NaN, fewer than ``min_slices`` slices of evidence, a
  latency excess still inside its warm-up allowance (``warmup.py``), or no histogram;
* **proceed** — otherwise, with the article's safe weight computed from the deltas the
  evidence cannot rule out (upper bounds at ``1 - alpha``): a thin sample gets a small
  weight. ``evidence.within_slo`` says the bounds themselves are within the thresholds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

from canarypilot.analysis.interpolate import safe_weight
from canarypilot.analysis.signals import error_test, latency_test
from canarypilot.analysis.slices import Cleaned, clean, min_slices
from canarypilot.model import (
    Action,
    Decision,
    SignalTest,
    Status,
    StepEvidence,
    StepHistory,
    Verdict,
    Violation,
    ViolationKind,
)
from canarypilot.policy import Settings

_DEFAULT = Settings()


@dataclass(frozen=True, slots=True)
class _Tests:
    latency: SignalTest | None
    errors: SignalTest | None
    warmup_until: float | None
    warming_up: bool
    latency_slices: int


def decide(history: StepHistory, settings: Settings = _DEFAULT) -> Verdict:
    """The verdict for the step ``history`` describes.

    >>> from canarypilot.model import Slice, SliceCounts, Snapshot, Target, VersionStats
    >>> edges = (0.1, 0.2, 0.4, math.inf)
    >>> def counts(n, errors, *cum):
    ...     return SliceCounts(n, errors, tuple(zip(edges, (*cum, n))))
    >>> slices = tuple(Slice(15.0 * i, 15.0 * (i + 1), counts(1900, 19, 1700, 1885, 1899),
    ...                      counts(100, 30, 10, 20, 40)) for i in range(6))
    >>> snap = Snapshot(Target("api"), VersionStats("v1-stable"), VersionStats("v2-canary"), 90, 90)
    >>> v = decide(StepHistory(Target("api"), 5.0, 0.0, 95.0, slices, snap))
    >>> v.action.value, v.weight
    ('rollback', 0.0)
    """
    slo = settings.slo
    cleaned = clean(history, max_age=slo.max_sample_age_seconds)
    need = min_slices(cleaned, slo.max_transient_seconds, history.scrape_interval)
    tests = _run_tests(cleaned, settings, need)
    evidence = StepEvidence(
        latency=tests.latency,
        errors=tests.errors,
        alpha=slo.alpha,
        min_slices=need,
        warmup_until=tests.warmup_until,
        warming_up=tests.warming_up,
    )
    latency_bound = None if tests.latency is None else tests.latency.bound
    error_bound = None if tests.errors is None else tests.errors.bound
    weight = None
    if latency_bound is not None and error_bound is not None:
        weight = safe_weight(max(0.0, latency_bound), max(0.0, error_bound), settings.interpolation)

    reasons: list[str] = [*cleaned.problems]
    violations = tuple(
        Violation(test.kind, test.point if test.point is not None else math.nan, test.threshold)
        for test in (tests.errors, tests.latency)
        if test is not None and test.rejects
    )
    for test in (tests.errors, tests.latency):
        if test is not None:
            reasons.append(_describe(test, slo.alpha))
    if violations:
        status, action, chosen = Status.ROLLBACK, Action.ROLLBACK, 0.0
        reasons.append(f"the sequential test rejects at alpha = {slo.alpha:g}: rolling back")
    else:
        waiting = _hold_reasons(cleaned, tests, need)
        if waiting or weight is None:
            status, action, chosen = Status.HOLD, Action.HOLD, None
            reasons.extend(waiting or ["the deltas' bounds cannot be computed yet"])
        else:
            status, action, chosen = Status.PROCEED, Action.PROCEED, weight
            verdict = "within the SLO" if evidence.within_slo else "not yet shown within the SLO"
            reasons.append(
                f"no evidence against the canary; bounds at {1 - slo.alpha:.0%}: p99 "
                f"{latency_bound:+.1%}, errors {error_bound * 100:+.2f} points ({verdict}): "  # type: ignore[operator]
                f"safe weight {weight:g}%"
            )
    snapshot = history.snapshot
    decision = Decision(
        status=status,
        weight=chosen,
        latency_delta=None if tests.latency is None else tests.latency.point,
        error_delta=None if tests.errors is None else tests.errors.point,
        canary=snapshot.canary,
        stable=snapshot.stable,
        reasons=tuple(reasons),
        safe_weight=weight,
        violations=violations,
        target=history.target,
        at=history.at,
        latency_bound=latency_bound,
        error_bound=error_bound,
        evidence=evidence,
    )
    return Verdict(action, chosen, decision, decision.reasons)


def _run_tests(cleaned: Cleaned, settings: Settings, need: int) -> _Tests:
    slo = settings.slo
    z = NormalDist().inv_cdf(1.0 - slo.alpha)
    errors = error_test(cleaned.slices, slo=slo, z=z, need=need)
    found = latency_test(
        cleaned.slices,
        slo=slo,
        quantile=settings.query.quantile,
        z=z,
        need=need,
        since=cleaned.since,
    )
    if found is None:
        return _Tests(None, errors, None, False, 0)
    return _Tests(found.test, errors, found.warmup_until, found.warming_up, found.test.slices)


def _hold_reasons(cleaned: Cleaned, tests: _Tests, need: int) -> list[str]:
    reasons: list[str] = []
    if cleaned.blocking:
        reasons.append("cannot judge on this data: holding")
    if tests.errors is None:
        reasons.append("no error counts for both versions: holding")
    elif tests.errors.slices < need:
        reasons.append(f"{tests.errors.slices} slice(s) of evidence, {need} needed before any verdict")
    if tests.latency is None:
        reasons.append("no latency histogram for both versions: latency cannot be judged, holding")
    elif tests.warming_up:
        reasons.append("the canary's latency excess is within its fading warm-up allowance: holding")
    elif tests.latency_slices < need:
        reasons.append(
            f"{tests.latency_slices} slice(s) of latency evidence after the warm-up, {need} needed"
        )
    return reasons


def _describe(test: SignalTest, alpha: float) -> str:
    what = "p99" if test.kind is ViolationKind.LATENCY else "errors"
    point = "n/a" if test.point is None else _fmt(test.kind, test.point)
    bound = "n/a" if test.bound is None else _fmt(test.kind, test.bound)
    return (
        f"{what}: delta {point}, bound {bound} (limit {_fmt(test.kind, test.threshold)}); "
        f"e-value {test.e_value:.3g} of {1 / alpha:g} over {test.slices} slices, "
        f"{test.requests:.0f} canary requests{'; ' + test.basis if test.basis else ''}"
    )


def _fmt(kind: ViolationKind, value: float) -> str:
    return f"{value:+.1%}" if kind is ViolationKind.LATENCY else f"{value * 100:+.2f} points"
