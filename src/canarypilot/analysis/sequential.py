"""The anytime-valid test: a betting e-process whose unit of evidence is the time slice.

Each slice gives one observation per signal: ``k`` canary requests out of ``n`` that
count against it (errors, or requests beyond stable's tail bound), against the
reference ``r`` a canary within the SLO stays at or below on average (``decide.py``
derives it from stable in the same slice). The slice's standardised excess

    z = (k - n r) / sqrt(n r (1 - r))

is floored at -3 and divided by ``min(3, sqrt(n r / (1 - r)))`` (the most negative it
can be), which maps it to ``u >= -1``; it is capped at ``cap`` above. A gambler who
starts with 1 and stakes a fixed fraction ``lam`` of their wealth on ``u`` each slice
holds ``prod(1 + lam u)`` after the slices seen. If the canary is within the SLO, the
mean of ``u`` is at most 0 in every slice given the past, whatever the noise *inside* a
slice (a stall, a GC pause, per-slice jitter, requests correlated in any way), so the
wealth is a non-negative supermartingale and by Ville's inequality it ever reaches
``1/alpha`` with probability at most ``alpha``, however often it is looked at. The
e-value is the average wealth of four gamblers, ``lam = 0.9 (2/3)^j``, j = 0..3: the bold
ones win fast against a large regression, the timid ones lose less on the way to a win
against one near the threshold.

Two approximations, both small and on the cautious side of practice: the floor at -3
standard errors lifts the mean of ``u`` by at most ~1e-4 for binomial counts; and the
reference ``r`` is read from stable's slice, independent of the canary's requests only
up to the load they share.

The cap is what makes a transient harmless: one slice multiplies the boldest gambler's
wealth by at most ``1 + 0.9 cap``, and ``cap`` is chosen so that ``min_slices`` capped
slices in a row are what it takes to reach ``1/alpha`` from a fresh start. A burst that
touches fewer slices cannot roll a canary back on its own; a regression that persists
always can. The price: no rollback, however severe the regression, before
``min_slices`` slices have been seen.
"""

from __future__ import annotations

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


def slice_cap(alpha: float, min_slices: int) -> float:
    """The cap on one slice's ``u`` such that ``min_slices`` capped slices reach ``1/alpha``.

    >>> round(slice_cap(0.01, 4), 2)
    3.86
    """
    boldest = STAKES[0]
    needed = math.pow(len(STAKES) / alpha, 1.0 / max(1, min_slices))
    return (needed - 1.0) / boldest


def excess(obs: SliceObservation, cap: float) -> float:
    """The slice's bet outcome ``u`` in ``[-1, cap]`` (0 for a slice without requests)."""
    n, r = obs.n, obs.r
    if n <= 0 or not 0 < r < 1:
        return 0.0
    spread = math.sqrt(n * r * (1.0 - r))
    z = max(-FLOOR_Z, (obs.k - n * r) / spread)
    scale = min(FLOOR_Z, math.sqrt(n * r / (1.0 - r)))
    return min(cap, z / scale)


def log_wealth_prefixes(outcomes: Sequence[float]) -> list[list[float]]:
    """For each gambler, the cumulative log wealth after 0, 1, … slices: the wealth of a
    test started at slice ``s`` and read after slice ``t`` is ``exp(P[t] - P[s])``."""
    prefixes: list[list[float]] = []
    for lam in STAKES:
        running, row = 0.0, [0.0]
        for u in outcomes:
            running += math.log1p(lam * u)
            row.append(running)
        prefixes.append(row)
    return prefixes


def log_e_value(prefixes: list[list[float]], start: int, end: int) -> float:
    """The log e-value of the slices ``[start, end)``: log of the gamblers' mean wealth."""
    logs = [row[end] - row[start] for row in prefixes]
    top = max(logs)
    return top + math.log(sum(math.exp(x - top) for x in logs) / len(logs))
