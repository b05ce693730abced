"""The ladder's timing and rungs: when a step may end, and which weight comes next.

The controller's state machine decides *what* to do; this module answers the
questions it asks when a step passes, from the checkpoint alone (so a resumed
controller answers them the same way):

* **When the step may end.** Its pause (``pauses_seconds[step]``, the last one
  for steps past the schedule) has elapsed; and the move to 100 % never comes
  before ``bake_fraction`` of the whole schedule has run: some regressions come
  with time, not with traffic.
* **Which weight comes next** (the validated-capacity ladder). Every increase,
  the last to 100 % included, is capped by ``max_growth_factor`` times the
  current weight and by the safe weight, and the weight reached is judged before
  the next: 5 → 10 → 20 → 40 → 80 → 100. The last rung is reached from a weight
  whose growth cap covers 100 % once the safe weight does not ask for less than
  the current weight: a safe weight read from upper confidence bounds is below
  100 % for any canary not faster than stable, so "safe weight ≥ 100" would
  never promote anyone. A safe weight below the current weight holds it there: the
  current weight is validated, and only a rollback lowers it.
"""

from __future__ import annotations

from dataclasses import dataclass

from canarypilot.analysis import round_half_away
from canarypilot.policy import RolloutPolicy, Settings
from canarypilot.rollout.store import RolloutState

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


def next_rung(current: float, safe: float, settings: Settings) -> Rung:
    """The weight after a passing step at ``current`` with safe weight ``safe``.

    >>> from canarypilot.policy import Settings
    >>> next_rung(40.0, 100.0, Settings())
    Rung(weight=80.0, cap=80.0, promote=False)
    >>> next_rung(80.0, 90.0, Settings())
    Rung(weight=100.0, cap=160.0, promote=True)
    >>> next_rung(20.0, 33.6, Settings())
    Rung(weight=33.6, cap=40.0, promote=False)
    >>> next_rung(40.0, 30.0, Settings())  # held at the validated weight, not lowered
    Rung(weight=40.0, cap=80.0, promote=False)
    """
    floor = settings.interpolation.min_weight
    cap = round_half_away(max(current, floor, 1.0) * settings.rollout.max_growth_factor, 1)
    if cap >= 100.0 and safe >= current - WEIGHT_TOLERANCE:
        return Rung(100.0, cap, True)
    # A passing step never lowers the weight: the current one is validated; only a rollback lowers it.
    weight = max(floor, current, min(safe, cap, 100.0))
    return Rung(weight, cap, weight >= 100.0)


def pause_ends(state: RolloutState, policy: RolloutPolicy) -> float:
    """When the current step's pause is over (steps past the schedule reuse its last pause)."""
    pauses = policy.pauses_seconds
    return state.step_started_at + pauses[min(state.step, len(pauses) - 1)]


def bake_ends(state: RolloutState, policy: RolloutPolicy) -> float:
    """Before this instant the ladder may not reach 100 %, however good the evidence."""
    return state.started_at + policy.bake_fraction * sum(policy.pauses_seconds)
