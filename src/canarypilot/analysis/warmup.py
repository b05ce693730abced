"""Warm-up as a model: an excess that decays after a weight change is not evidence.

Cold caches, JIT compilation and connection pools make a canary slow right after it
gets more traffic, and the slowness fades. A regression does not fade. So the latency
evidence starts at the first slice ``s`` after which the canary's excess is no longer
*decaying*, where decaying means: over the slices ``[s, now)``, the earlier half put more
than the SLO's share of requests beyond stable's tail bound, and the later half put
fewer there, by more than ``DECAY_Z`` standard errors (binomial, inflated by the
slices' own spread). Slices before ``s`` are the warm-up.

The warm-up is bounded: ``s`` never passes the last slice that began within
``max_warmup`` of the weight change, so an excess that is still there then counts,
decaying or not. While every start within the bound still shows decay, the step is
warming up: no rollback and no advance on latency.

This rule only ever *removes* evidence, so it cannot add false rollbacks: the rollback
also requires the test started at the weight change to reject (``decide.py``). What it
can cost is a slower rollback of a regression whose early slices happen to read higher
than its later ones (one standard error: about one look in six for a steady excess).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

#: Standard errors by which the later half must read lower for the excess to be decaying.
DECAY_Z = 1.0


def dispersion(k: Sequence[float], n: Sequence[float]) -> float:
    """Overdispersion of per-slice counts: 1 for independent requests, more when they move together.

    >>> dispersion([1, 1, 1, 1], [100, 100, 100, 100])
    1.0
    >>> dispersion([0, 0, 0, 40], [100, 100, 100, 100]) > 10
    True
    """
    n_sum = sum(n)
    used = [(ki, ni) for ki, ni in zip(k, n, strict=True) if ni > 0]
    if len(used) < 2 or n_sum <= 0:
        return 1.0
    p = sum(k) / n_sum
    if not 0 < p < 1:
        return 1.0
    chi2 = sum((ki - ni * p) ** 2 / (ni * p * (1 - p)) for ki, ni in used)
    return max(1.0, chi2 / (len(used) - 1))


def decaying(k: Sequence[float], n: Sequence[float], reference: float) -> bool:
    """Whether the excess over ``reference`` in these slices fades from the first half to the second."""
    if len(k) < 2:
        return False
    mid = (len(k) + 1) // 2
    k_a, n_a, k_b, n_b = sum(k[:mid]), sum(n[:mid]), sum(k[mid:]), sum(n[mid:])
    if n_a <= 0 or n_b <= 0:
        return False
    p_a, p_b = k_a / n_a, k_b / n_b
    if p_a <= reference or p_b >= p_a:
        return False
    pooled = (k_a + k_b) / (n_a + n_b)
    spread = math.sqrt(dispersion(k, n) * pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    return spread <= 0 or (p_a - p_b) / spread > DECAY_Z


def warmup_end(k: Sequence[float], n: Sequence[float], reference: float, allowance: int) -> int:
    """The first slice of evidence: after the decaying warm-up, at most ``allowance``.

    Returns ``len(k)`` when every start within the allowance still shows decay and the
    allowance is not over: the whole step so far is warm-up.

    >>> warmup_end([30, 20, 12, 6, 3, 1, 1, 1, 1], [100] * 9, 0.01, allowance=12)
    4
    >>> warmup_end([5, 5, 5, 5], [100] * 4, 0.01, allowance=12)   # steady: no warm-up
    0
    """
    count = len(k)
    for start in range(min(allowance, count)):
        if not decaying(k[start:], n[start:], reference):
            return start
    return min(allowance, count)
