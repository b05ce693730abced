"""``decide``: one step's history in, one verdict out — the engine every entry point calls.

The verdict is a pure function of the ``StepHistory`` (the slices since the canary's
weight last changed) and the settings: no memory between calls, no clock. The Argo gate
on either replica, the controller, replay and the simulator therefore agree by
construction. See docs/decision-model.md for the meaning of each rule.

* **rollback** — an anytime-valid test (``sequential.py``) rejects "the canary is within
  the SLO" at level ``slo.alpha``, on errors or on latency;
* **hold** — no data, stale data, NaN, fewer than ``min_slices`` slices of evidence, a
  latency excess still inside its warm-up allowance (``warmup.py``), no histogram, a
  measured delta visibly beyond its threshold (``SignalTest.beyond``), or evidence that
  leans against the canary without deciding (an e-value above 1: advancing would restart
  it at a higher weight);
* **proceed** — otherwise, with the article's safe weight computed from the deltas the
  evidence cannot rule out (upper bounds at ``slo.weight_confidence``): a thin sample gets a small
  weight. Once the bounds themselves are within the thresholds (``evidence.within_slo``)
  the weight is the formula's for the measured deltas, if that is more.
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
_NAMES = {ViolationKind.LATENCY: "p99 latency delta", ViolationKind.ERRORS: "error rate delta"}


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
    weight = _weight(tests, evidence.within_slo, settings)

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
        rejected = " and ".join(
            f"the {_NAMES[test.kind]} (e-value {test.e_value:.3g})"
            for test in (tests.errors, tests.latency)
            if test is not None and test.rejects
        )
        reasons.append(
            f"the sequential test rejects {rejected} at alpha = {slo.alpha:g} (e-value >= "
            f"{1 / slo.alpha:g}): rolling back"
        )
    else:
        waiting = _hold_reasons(cleaned, tests, need)
        if waiting or weight is None:
            status, action, chosen = Status.HOLD, Action.HOLD, None
            reasons.extend(waiting or ["the deltas' bounds cannot be computed yet"])
        else:
            status, action, chosen = Status.PROCEED, Action.PROCEED, weight
            verdict = (
                "shown within the SLO: weight from the measured deltas"
                if evidence.within_slo
                else "not yet shown within the SLO: weight from the bounds"
            )
            reasons.append(
                f"no evidence against the canary; bounds at {slo.weight_confidence:.0%}: p99 "
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


def _weight(tests: _Tests, within_slo: bool, settings: Settings) -> float | None:
    """The article's formula on the deltas the evidence cannot rule out; once even those are
    within the thresholds (the canary is shown within the SLO), on the measured deltas: the
    bounds stop holding back a canary that has proved itself, and the formula still gives a
    slower one less traffic."""
    latency, errors = tests.latency, tests.errors
    if latency is None or errors is None or latency.bound is None or errors.bound is None:
        return None
    weight = safe_weight(latency.bound, errors.bound, settings.interpolation)
    if within_slo and latency.point is not None and errors.point is not None:
        weight = max(weight, safe_weight(latency.point, errors.point, settings.interpolation))
    return weight


def _run_tests(cleaned: Cleaned, settings: Settings, need: int) -> _Tests:
    slo = settings.slo
    z = NormalDist().inv_cdf(slo.weight_confidence)
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
    for test in (tests.errors, tests.latency):
        # Measured worse than the SLO allows, not yet decided (one slice counts for at most the
        # test's cap): more traffic would be a bet against what is measured.
        if test is not None and test.beyond and test.point is not None and test.point > test.threshold:
            what = "p99" if test.kind is ViolationKind.LATENCY else "error"
            reasons.append(
                f"the measured {what} delta {_fmt(test.kind, test.point)} is beyond its limit "
                f"{_fmt(test.kind, test.threshold)}: holding while the evidence accumulates"
            )
        # The newest slice alone is visibly past its reference: a regression that began in it
        # has not had time to weigh in the test; more traffic waits for the next slice.
        if test is not None and test.latest_beyond and not test.e_value > 1.0:
            what = "p99" if test.kind is ViolationKind.LATENCY else "error"
            reasons.append(
                f"the newest slice's {what} reading is visibly past its reference: holding for the next slice"
            )
        # The evidence leans against the canary (the test's wealth is above its stake) but has
        # not decided: advancing would restart it at a higher weight; holding lets it grow.
        if test is not None and test.e_value > 1.0:
            what = "p99" if test.kind is ViolationKind.LATENCY else "error"
            reasons.append(
                f"the {what} evidence leans against the canary (e-value {test.e_value:.3g} > 1, "
                "undecided): holding while it accumulates"
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
