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
linear gamblers are four, ``lam = 0.9 (2/3)^j``, j = 0..3: the bold
ones win fast against a large regression, the timid ones lose less on the way to a win
against one near the threshold.

Two approximations, both small and on the cautious side of practice: the floor at -3
standard errors lifts the mean of ``u`` by at most ~1e-4 for binomial counts; and the
reference ``r`` is read from stable's slice, independent of the canary's requests only
up to the load they share.

The cap is what makes a transient harmless: one slice multiplies the boldest gambler's
wealth by at most ``1 + 0.9 cap``, and ``cap`` is chosen so that ``min_slices`` capped
slices in a row are what it takes to reach ``1/alpha`` from a fresh start (with the rate
gamblers below at their caps too, one slice fewer still never does). A burst that
touches fewer slices cannot roll a canary back on its own; a regression that persists
always can. The price: no rollback, however severe the regression, before
``min_slices`` slices have been seen.

**Rate gamblers.** A bet linear in ``u`` is all a null that fixes only the slice's mean
allows, and it is slow against a large excess: 15 canary errors of 300 against a 2.1 %
reference multiply the boldest linear wealth by 2.2, where the likelihood ratio of the
counts is about 60. Four more gamblers each bet that the canary's count runs ``q`` times
the reference (``RATIOS``) and are paid the Poisson likelihood ratio
``q^k exp(-n r (q - 1))``, capped at ``rate_cap``. If the canary's requests in a slice
fail independently at a rate at most ``r``, its expectation is at most 1 (binomial or
Poisson counts): the one assumption the linear gamblers do not need, made for errors
only (``signals.py``: on latency they sit out, ``bet(..., top=None)``). The
counts are first divided by the canary's typical overdispersion
(``signals.typical_dispersion``, at least 1), the cap still makes ``min_slices`` slices
the least that can decide, and the eight gamblers' mean is the e-value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate

#: The gamblers' stakes: a grid from bold to timid, averaged with equal weights.
STAKES: tuple[float, ...] = tuple(0.9 * (2 / 3) ** j for j in range(4))
#: The rate gamblers' bets: the canary's count in a slice runs this many times the reference.
RATIOS: tuple[float, ...] = (1.5, 2.0, 3.0, 5.0)
#: How many gamblers share the starting stake: the e-value is their mean wealth.
GAMBLERS = len(STAKES) + len(RATIOS)
#: Standard errors below the reference a slice can count for (see the module docstring).
FLOOR_Z = 3.0


@dataclass(frozen=True, slots=True)
class SliceObservation:
    """One slice's count against the reference: ``k`` of ``n`` requests, reference share ``r``."""

    k: float
    n: float
    r: float


def rate_cap(alpha: float, min_slices: int) -> float:
    """The most one slice multiplies a rate gambler's wealth by: ``min_slices`` slices at the
    cap take the rate gamblers alone (half the stake) to ``1 / alpha``; with every gambler
    at its cap, one slice fewer never does (``tests/analysis/test_sequential.py`` checks it
    for every ``min_slices`` up to 8).

    >>> round(rate_cap(0.01, 3), 2)
    5.85
    """
    return math.pow(GAMBLERS / len(RATIOS) / alpha, 1.0 / max(1, min_slices))


def slice_cap(alpha: float, min_slices: int) -> float:
    """The cap on one slice's ``u`` such that ``min_slices`` capped slices take the linear
    gamblers' mean wealth to ``1/alpha``.

    >>> round(slice_cap(0.01, 4), 2)
    3.86
    """
    needed = math.pow(len(STAKES) / alpha, 1.0 / max(1, min_slices))
    return (needed - 1.0) / STAKES[0]


@dataclass(frozen=True, slots=True)
class Bet:
    """One slice's outcome: its linear excess ``u`` and what it multiplies each gambler's
    wealth by (the linear gamblers' ``1 + lam u``, then the rate gamblers' capped ratios)."""

    u: float
    multipliers: tuple[float, ...]
    #: The slice's count is visibly above its reference: at least two requests, and more
    #: than ``VISIBLE_Z`` standard errors above it.
    visible: bool = False


#: Standard errors above the reference that make a slice's excess visible: only such a slice
#: can be excused as warm-up (a healthy canary is above its reference in half its slices).
VISIBLE_Z = 2.0


def visible(k: float, n: float, r: float) -> bool:
    """``k`` of ``n`` is clearly above the share ``r``: at least two requests, and
    ``VISIBLE_Z`` standard errors above ``n r``.

    >>> visible(1, 30, 0.01), visible(8, 30, 0.01), visible(40, 1000, 0.03)
    (False, True, False)
    """
    if n <= 0 or k < 2:
        return False
    r = min(max(r, 1e-9), 1 - 1e-9)
    return k - n * r > VISIBLE_Z * math.sqrt(n * r * (1 - r))


def bet(obs: SliceObservation, cap: float, top: float | None, *, spread: float = 1.0) -> Bet:
    """The slice's bet for every gambler. ``top`` caps the rate gamblers' multipliers
    (``rate_cap``); ``None``: they sit out, each staking like its linear twin, so the
    e-value is the linear gamblers' mean (the latency signal, ``signals.py``). ``spread`` is
    the canary's overdispersion (>= 1) its counts are divided by before the rate gamblers
    read them.

    >>> b = bet(SliceObservation(15, 300, 0.021), slice_cap(0.01, 3), rate_cap(0.01, 3))
    >>> round(b.multipliers[0], 2), round(max(b.multipliers), 2)
    (2.24, 5.85)
    """
    u = excess(obs, cap)
    linear = tuple([1.0 + lam * u for lam in STAKES])
    n, r = obs.n, obs.r
    seen = 0 < r < 1 and visible(obs.k, n, r)
    if top is None:
        return Bet(u, linear + linear[: len(RATIOS)], seen)
    if n <= 0 or not 0 < r < 1:
        return Bet(u, linear + (1.0,) * len(RATIOS))
    k, mean = obs.k / max(1.0, spread), n * r / max(1.0, spread)
    rates = tuple(min(top, math.exp(min(700.0, k * math.log(q) - mean * (q - 1.0)))) for q in RATIOS)
    return Bet(u, linear + rates, seen)


def average(a: Bet, b: Bet) -> Bet:
    """Two bets on the same slice, half the stake on each: again a bet of mean at most 1."""
    return Bet(
        (a.u + b.u) / 2,
        tuple((x + y) / 2 for x, y in zip(a.multipliers, b.multipliers, strict=True)),
        a.visible or b.visible,
    )


def excess(obs: SliceObservation, cap: float) -> float:
    """The slice's bet outcome ``u`` in ``[-1, cap]`` (0 for a slice without requests)."""
    n, r = obs.n, obs.r
    if n <= 0 or not 0 < r < 1:
        return 0.0
    spread = math.sqrt(n * r * (1.0 - r))
    z = max(-FLOOR_Z, (obs.k - n * r) / spread)
    scale = min(FLOOR_Z, math.sqrt(n * r / (1.0 - r)))
    return min(cap, z / scale)


def log_wealth_prefixes(bets: Sequence[Bet]) -> list[list[float]]:
    """For each gambler, the cumulative log wealth after 0, 1, … slices: the wealth of a
    test started at slice ``s`` and read after slice ``t`` is ``exp(P[t] - P[s])``."""
    prefixes: list[list[float]] = []
    columns = list(zip(*(b.multipliers for b in bets), strict=True)) or [()] * GAMBLERS
    for g, column in enumerate(columns):
        twin = next((h for h in range(g) if columns[h] == column), None)
        if twin is not None:  # the rate gamblers sitting out stake like their linear twins
            prefixes.append(prefixes[twin])
            continue
        prefixes.append(list(accumulate((math.log(max(1e-300, m)) for m in column), initial=0.0)))
    return prefixes


def log_e_value(prefixes: list[list[float]], start: int, end: int) -> float:
    """The log e-value of the slices ``[start, end)``: log of the gamblers' mean wealth."""
    logs = [row[end] - row[start] for row in prefixes]
    top = max(logs)
    return top + math.log(sum(math.exp(x - top) for x in logs) / len(logs))
