"""Warm-up as a model: an excess that fades after a weight change is not evidence.

Cold caches, JIT compilation and connection pools make a canary slow right after it gets
more traffic, and the slowness fades; a regression does not. The model: after a weight
change, the canary may put as large a share of its requests beyond the test latency as it
did in its first slices, *decaying* by a factor e every ``max_warmup / 3``, and nothing
after ``max_warmup``. That allowance raises the latency test's reference slice by
slice (``signals.py``), so

* an excess that fades at least that fast is held as warm-up, never evidence;
* an excess that stops fading outgrows its allowance and becomes evidence, a little
  later than without the model (about ``max_warmup / 3 * ln(first / now)``);
* a canary that starts within the SLO has no allowance at all: no grace period.

Only the slices before the one judged set the allowance (the first ``seed`` of the step),
and the allowance only ever *raises* the reference, so the test's error rate is untouched:
the model cannot add a false rollback, it can only delay a true one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def allowances(
    shares: Sequence[float], times: Sequence[float], *, seed: int, max_warmup: float
) -> list[float]:
    """The share of requests the warm-up excuses in each slice.

    ``shares[i]`` is slice ``i``'s share beyond the test latency, ``times[i]`` its middle,
    in seconds since the weight change. Slice ``i``'s allowance is the largest share of
    the first ``seed`` slices before it, decayed from that slice's time to ``times[i]``;
    0 once ``times[i]`` is past ``max_warmup``.

    >>> shares, times = [0.2, 0.1, 0.0, 0.0], [7.5, 22.5, 37.5, 52.5]
    >>> [round(a, 3) for a in allowances(shares, times, seed=2, max_warmup=45)]
    [0.0, 0.074, 0.037, 0.0]
    """
    if max_warmup <= 0:
        return [0.0] * len(shares)
    constant = max_warmup / 3.0
    out: list[float] = []
    for i, now in enumerate(times):
        if now > max_warmup:
            out.append(0.0)  # the warm-up is over, whatever was left of it
            continue
        seeds = range(min(i, seed))
        out.append(max((shares[j] * math.exp(-(now - times[j]) / constant) for j in seeds), default=0.0))
    return out
