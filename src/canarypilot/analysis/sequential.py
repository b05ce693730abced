"""The anytime-valid test: a betting e-process whose unit of evidence is the time slice.

Each slice gives one observation per signal: ``k`` canary requests out of ``n`` that
count against it (errors, or requests beyond stable's tail bound), against the
reference ``r`` a canary within the SLO stays at or below on average (``signals.py``
derives it from stable in the same slice). The slice's standardised excess

    z = (k - n r) / sqrt(n r (1 - r))

is floored at -3 and divided by ``min(3, sqrt(n r / (1 - r)))`` (the most negative it
can be), which maps it to ``u >= -1``; for ``n r`` under about 9 that is exactly
``k / (n r) - 1``. A gambler who starts with 1 and stakes a fixed fraction ``lam`` of
their wealth on ``u`` each slice holds ``prod(1 + lam u)`` after the slices seen. If the
canary is within the SLO, the mean of ``u`` is at most 0 in every slice given the past,
whatever the noise *inside* a slice (a stall, a GC pause, per-slice jitter, requests
correlated in any way), so the wealth is a non-negative supermartingale and by Ville's
inequality it ever reaches ``1/alpha`` with probability at most ``alpha``, however often
it is looked at. The e-value is the average wealth of four gamblers,
``lam = 0.9 (2/3)^j``, j = 0..3: the bold ones win fast against a large regression, the
timid ones lose less on the way to a win against one near the threshold.

**Transients are trimmed, not capped.** A stall, GC pause or error burst of up to
``max_transient_seconds`` touches at most ``trim`` slices (``slices.min_slices`` - 1).
Each gambler's wealth is read *without* its ``trim`` best slices (those that multiplied
it by more than 1): a burst that touches fewer slices than that adds nothing, however
severe, and a regression that persists is counted at full strength in every other
slice. Leaving out factors above 1 can only lower a product, so the trimmed wealth never
exceeds the full one and keeps its guarantee: the probability of ever reaching ``1/alpha``
stays at most ``alpha``. (The previous design capped every slice instead, so that
``min_slices`` capped slices reached ``1/alpha``: with short slices the cap left each
slice nearly no weight, and evidence against a real regression hardly grew.)

One approximation, small and on the cautious side of practice: the floor at -3
standard errors lifts the mean of ``u`` by at most ~1e-4 for binomial counts; the
reference ``r`` is read from stable's slice, independent of the canary's requests only
up to the load they share.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass

#: The gamblers' stakes: a grid from bold to timid, averaged with equal weights.
STAKES: tuple[float, ...] = tuple(0.9 * (2 / 3) ** j for j in range(4))
#: Standard errors below the reference a slice can count for (see the module docstring).
FLOOR_Z = 3.0


@dataclass(frozen=True, slots=True)
class SliceObservation:
    """One slice's count against the reference: ``k`` of ``n`` requests, reference share ``r``."""

    k: float
    n: float
    r: float


def outlier_level(alpha: float, slices: int) -> float:
    """The outcome ``u`` at which ``slices`` slices in a row take the boldest gambler's share of
    the e-value to ``1/alpha``: a slice at or above it is, alone, a large part of a verdict
    (the bounds leave such slices out while there are no more of them than a transient touches).

    >>> round(outlier_level(0.01, 4), 2)
    3.86
    """
    boldest = STAKES[0]
    needed = math.pow(len(STAKES) / alpha, 1.0 / max(1, slices))
    return (needed - 1.0) / boldest


def excess(obs: SliceObservation) -> float:
    """The slice's bet outcome ``u >= -1`` (0 for a slice without requests).

    >>> excess(SliceObservation(0, 100, 0.01)), excess(SliceObservation(3, 100, 0.01))
    (-1.0, 2.0)
    """
    n, r = obs.n, obs.r
    if n <= 0 or not 0 < r < 1:
        return 0.0
    spread = math.sqrt(n * r * (1.0 - r))
    z = max(-FLOOR_Z, (obs.k - n * r) / spread)
    scale = min(FLOOR_Z, math.sqrt(n * r / (1.0 - r)))
    return z / scale


def log_e_value(outcomes: Sequence[float], trim: int = 0) -> float:
    """The log e-value of the slices' outcomes: log of the gamblers' mean wealth, each
    gambler's ``trim`` best slices (those above 1) left out.

    >>> round(math.exp(log_e_value([2.0, 2.0, 2.0])), 2)
    10.51
    >>> log_e_value([50.0], trim=1)
    0.0
    """
    logs = []
    for lam in STAKES:
        terms = [math.log1p(lam * u) for u in outcomes]
        if trim > 0:
            best = [t for t in heapq.nlargest(trim, terms) if t > 0]
            logs.append(math.fsum(terms) - math.fsum(best))
        else:
            logs.append(math.fsum(terms))
    if not logs:
        return 0.0
    top = max(logs)
    return top + math.log(sum(math.exp(x - top) for x in logs) / len(logs))
