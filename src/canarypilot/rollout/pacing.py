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
  the next: 5 → 10 → 20 → 40 → 80 → 100. The last rung is taken from a weight
  whose growth cap covers 100 % once the evidence shows the canary within the SLO
  (``StepEvidence.within_slo``): the safe weight, read from upper confidence
  bounds, is below 100 % for any canary not faster than stable, so "safe weight
  ≥ 100" would never promote anyone. A safe weight below the current weight
  holds it there: the current weight is validated, and only a rollback lowers it.
"""

from __future__ import annotations

from canarypilot.analysis.ladder import WEIGHT_TOLERANCE, Rung, next_rung
from canarypilot.policy import RolloutPolicy
from canarypilot.rollout.store import RolloutState


def pause_ends(state: RolloutState, policy: RolloutPolicy) -> float:
    """When the current step's pause is over (steps past the schedule reuse its last pause)."""
    pauses = policy.pauses_seconds
    return state.step_started_at + pauses[min(state.step, len(pauses) - 1)]


def bake_ends(state: RolloutState, policy: RolloutPolicy) -> float:
    """Before this instant the ladder may not reach 100 %, however good the evidence."""
    return state.started_at + policy.bake_fraction * sum(policy.pauses_seconds)


__all__ = ["WEIGHT_TOLERANCE", "Rung", "bake_ends", "next_rung", "pause_ends"]
