"""The validated-capacity ladder: which weight may follow a passing step.

Pure arithmetic shared by the controller (``rollout``), which moves the weight itself,
and the Argo gate (``service``), which tells Argo whether its next fixed rung may be
taken: both apply the same rule to the same verdict. Every increase, the last to
100 % included, is capped by ``rollout.max_growth_factor`` times the current weight, and
judged at the weight it reached before the next. While the evidence has not shown the
canary within the SLO (``StepEvidence.within_slo``: both upper bounds at or below their
thresholds), the safe weight caps the increase too, and 100 % is not taken at all: the
safe weight, read from upper confidence bounds, stays below 100 % for any canary not
faster than stable, so "safe weight ≥ 100" would promote no one. Once it has, the
canary's capacity at the weight reached is validated and the growth cap alone bounds the
next increase: 5 → 10 → 20 → 40 → 80 → 100. A passing verdict never lowers the weight:
when the safe weight covers no more than the current one, the weight holds while the
step's evidence accumulates.
"""

from __future__ import annotations

from dataclasses import dataclass

from canarypilot.analysis.interpolate import round_half_away
from canarypilot.policy import Settings

#: Routers have a finite resolution (HAProxy: 256 weight steps); a read-back this
#: close to the requested weight confirms it, and a safe weight this close to the
#: current one does not ask for less.
WEIGHT_TOLERANCE = 0.5


@dataclass(frozen=True, slots=True)
class Rung:
    """The next weight: ``weight``, the growth ``cap`` it was held to, and whether it
    ends the ladder (``promote``: 100 %)."""

    weight: float
    cap: float
    promote: bool


def next_rung(current: float, safe: float, settings: Settings, *, within_slo: bool) -> Rung:
    """The weight after a passing step at ``current`` with safe weight ``safe``;
    ``within_slo``: the evidence shows the canary within the SLO (``StepEvidence.within_slo``).

    >>> from canarypilot.policy import Settings
    >>> next_rung(40.0, 100.0, Settings(), within_slo=False)
    Rung(weight=80.0, cap=80.0, promote=False)
    >>> next_rung(80.0, 90.0, Settings(), within_slo=True)
    Rung(weight=100.0, cap=160.0, promote=True)
    >>> next_rung(80.0, 90.0, Settings(), within_slo=False)
    Rung(weight=80.0, cap=160.0, promote=False)
    >>> next_rung(20.0, 33.6, Settings(), within_slo=False)
    Rung(weight=33.6, cap=40.0, promote=False)
    >>> next_rung(20.0, 33.6, Settings(), within_slo=True)
    Rung(weight=40.0, cap=40.0, promote=False)
    >>> next_rung(48.8, 60.0, Settings(), within_slo=True)  # 97.6 % would starve stable
    Rung(weight=100.0, cap=97.6, promote=True)
    """
    floor = settings.interpolation.min_weight
    cap = round_half_away(max(current, floor, 1.0) * settings.rollout.max_growth_factor, 1)
    # A rung that would leave stable less than the first rung's share (min_weight) is 100 %:
    # with so few stable requests there is no baseline left to judge it against (a healthy
    # canary at 97.6 % held until its deadline on a p99 bound set by 2.4 % of the traffic).
    reaches = cap >= 100.0 - floor
    if within_slo:
        # Shown within the SLO at the weight reached: its capacity there is validated, and
        # the growth cap alone bounds the next increase (the safe weight, read from upper
        # bounds, would keep a healthy canary creeping for as long as its step is young).
        return Rung(100.0, cap, True) if reaches else Rung(cap, cap, False)
    if safe >= 100.0 and reaches:
        return Rung(100.0, cap, True)
    if reaches:
        # One capped step would reach 100 %: wait until the evidence shows the canary within
        # the SLO rather than creep towards 100 % on a safe weight that cannot reach it.
        return Rung(max(floor, current), cap, False)
    # Never down on a passing verdict: a safe weight below the current one is a thin sample's
    # uncertainty (the bounds narrow as the step goes on), not harm, which rolls back.
    weight = min(safe, cap)
    if weight < current * settings.rollout.min_growth_factor - WEIGHT_TOLERANCE:
        # Too small an increase to be worth restarting the step's evidence: hold.
        weight = current
    return Rung(max(floor, weight), cap, False)
