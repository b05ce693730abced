"""The step structure of past releases, read from the canary's observed share of requests.

Nothing in Prometheus says which weight the router had; the traffic does. Per
slice, the canary served ``c`` of ``n`` requests. A step is a run of slices
whose share is one binomial proportion; a new step starts where the share
moves away from it beyond the noise:

* the last ``m`` slices (``m`` up to ``MAX_RUN``), pooled, differ from the
  step's share before them by more than ``Z`` standard errors *and* by more
  than ``MIN_RELATIVE`` of it (a 5 % -> 10 % change is +100 %; jitter of the
  router's hashing is a few percent). The step then starts where the split
  makes both steps' shares most likely. At high traffic one slice is enough;
  at low traffic the change needs a few slices to stand out of the noise;
* the canary appearing (a release starts) or disappearing (rolled back, or
  promoted: stable gone) ends a release.

``refine`` then places each change in time with hindsight: a router's weight
change is a fact of the recorded past, which the controller that made it knew
at once. A step's weight is its share in percent, snapped to the roundest weight within
the noise (a multiple of 5, else a whole percent): ladders are written so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Standard errors a share must move by to start a new step.
Z = 5.0
#: ... and by at least this fraction of the old share.
MIN_RELATIVE = 0.25
#: Most recent slices pooled when looking for a change.
MAX_RUN = 8
#: A step needs this many slices of its own before a change from it can be told.
MIN_STEP_SLICES = 2


@dataclass(frozen=True, slots=True)
class Step:
    """Slices ``[first, last]`` at one weight.

    ``since`` is when the weight changed (Unix seconds), once ``refine`` has placed it:
    estimated inside a ``mixed`` slice, else the start of the step's first slice."""

    release: int
    first: int
    last: int
    since: float = math.nan
    mixed: bool = False


def find_steps(canary: np.ndarray, stable: np.ndarray) -> list[Step]:
    """Steps of every release from the canary's and stable's requests per slice (``NaN``: missing)."""
    both = ~np.isnan(canary) & ~np.isnan(stable)
    c_sum = np.concatenate([[0.0], np.cumsum(np.where(both, canary, 0.0))])
    n_sum = c_sum + np.concatenate([[0.0], np.cumsum(np.where(both, stable, 0.0))])
    steps: list[Step] = []
    release = -1
    first: int | None = None
    for k in range(len(canary)):
        c, s = canary[k], stable[k]
        live = not math.isnan(c) and c > 0 and not math.isnan(s) and s > 0
        if math.isnan(c) and math.isnan(s):
            continue  # a gap in the data: the step goes on, its slices missing
        if not live:
            if first is not None:
                steps.append(Step(release, first, k - 1))
                first = None
            continue
        if first is None:
            release += 1
            first = k
            continue
        start = _change(c_sum, n_sum, first, k)
        if start is not None:
            steps.append(Step(release, first, start - 1))
            first = start
    if first is not None:
        steps.append(Step(release, first, len(canary) - 1))
    return steps


def _change(c_sum: np.ndarray, n_sum: np.ndarray, first: int, k: int) -> int | None:
    """Where, among the last few slices up to ``k``, a new step starts (``None``: no change).

    ``c_sum``/``n_sum`` are prefix sums of the canary's and all requests over the slices."""
    for m in range(min(MAX_RUN, k - first - MIN_STEP_SLICES + 1), 0, -1):
        start = k - m + 1
        c0, n0 = float(c_sum[start] - c_sum[first]), float(n_sum[start] - n_sum[first])
        c1, n1 = float(c_sum[k + 1] - c_sum[start]), float(n_sum[k + 1] - n_sum[start])
        if n0 <= 0 or n1 <= 0:
            continue
        p0 = c0 / n0
        p1 = c1 / n1
        se = math.sqrt(max(p0 * (1 - p0), 1e-12) / n1 + max(p0 * (1 - p0), 1e-12) / n0)
        if abs(p1 - p0) > Z * se and abs(p1 - p0) > MIN_RELATIVE * p0:
            return _best_split(c_sum, n_sum, first, k)
    return None


def _best_split(c_sum: np.ndarray, n_sum: np.ndarray, first: int, k: int) -> int:
    """The start of the new step that makes the two steps' shares most likely (binomial)."""
    best, best_ll = k, -math.inf
    for j in range(max(first + MIN_STEP_SLICES, k - MAX_RUN + 1), k + 1):
        ll = _log_likelihood(c_sum[j] - c_sum[first], n_sum[j] - n_sum[first])
        ll += _log_likelihood(c_sum[k + 1] - c_sum[j], n_sum[k + 1] - n_sum[j])
        if ll > best_ll:
            best, best_ll = j, ll
    return best


def _log_likelihood(c: float, n: float) -> float:
    if n <= 0:
        return 0.0
    p = min(max(c / n, 1e-12), 1 - 1e-12)
    return float(c * math.log(p) + (n - c) * math.log(1 - p))


def refine(
    steps: list[Step], canary: np.ndarray, stable: np.ndarray, starts: np.ndarray, length: float
) -> list[Step]:
    """Place each weight change in time, with hindsight.

    A change inside a slice mixes both weights in it: a step's first slice whose share lies
    between the old and the new one (beyond four standard errors of the new) belongs to
    neither step, and the change is placed where its share says (a slice 40 % of the way
    from the old share to the new one changed 60 % of the way through). Otherwise the
    change happened at the slice's start at the latest: ``since`` is that start, and the
    walker moves it to the analysis instant at or before it. A release's last step that
    is only a mixed slice (the canary removed mid-slice) is dropped.
    """
    out: list[Step] = []
    for i, step in enumerate(steps):
        previous = out[-1] if out and out[-1].release == step.release else None
        p_old = 0.0 if previous is None else _share(canary, stable, previous.first, previous.last + 1)
        rest = (step.first + 1, step.last + 1)
        p_new = _share(canary, stable, *rest) if rest[0] < rest[1] else math.nan
        c, s = float(np.nan_to_num(canary[step.first])), float(np.nan_to_num(stable[step.first]))
        n = c + s
        first, since, mixed = step.first, float(starts[step.first]), False
        if math.isnan(p_new):
            last_of_release = i + 1 == len(steps) or steps[i + 1].release != step.release
            if previous is not None and last_of_release and n > 0 and c / n < p_old:
                continue  # the canary removed in the middle of this slice
        elif n > 0 and p_new != p_old:
            spread = 4 * math.sqrt(max(p_new * (1 - p_new), 1e-12) / n)
            towards_old = (c / n - p_new) * (p_old - p_new) > 0
            if towards_old and abs(c / n - p_new) > spread:
                moved = min(1.0, max(0.0, (c / n - p_old) / (p_new - p_old)))
                first, since, mixed = step.first + 1, since + (1 - moved) * length, True
        out.append(Step(step.release, first, step.last, since, mixed))
    return out


def _share(canary: np.ndarray, stable: np.ndarray, a: int, b: int) -> float:
    c = canary[a:b]
    s = stable[a:b]
    both = ~np.isnan(c) & ~np.isnan(s)
    total = float(c[both].sum() + s[both].sum())
    return float(c[both].sum()) / total if total > 0 else math.nan


def observed_weight(canary: float, total: float) -> float:
    """The share in percent, snapped to the roundest weight within three standard errors
    (plus a tenth of it for a multiple of 5, the ladders people write), else a whole
    percent, else one decimal."""
    if total <= 0:
        return math.nan
    share = 100 * canary / total
    p = canary / total
    noise = max(3 * 100 * math.sqrt(max(p * (1 - p), 1e-12) / total), 0.05)
    # Routers place requests by connection, hash or replica: a few percent off is normal.
    for grain, slack in ((5.0, 0.1), (1.0, 0.0)):
        snapped = grain * round(share / grain)
        if abs(share - snapped) <= noise + slack * snapped and 0 < snapped <= 100:
            return snapped
    return round(share, 1)
