"""The two signals' tests: what each slice counts against the canary, and the bounds.

**Errors.** In each slice, the canary's errors out of its requests against the reference
``r = max(stable's error rate over the step, stable's in the slice) + max_error_delta``:
a canary within the SLO errs at most that often, and an error burst both versions share
raises the reference with it.

**Latency.** Within the SLO means ``p99_canary <= (1 + delta) p99_stable``. The test
latency ``E`` is the first bucket bound at or above ``(1 + delta)`` times stable's p99;
the canary's count is its requests beyond ``E`` (exact: ``E`` is a bound), the reference
stable's share beyond ``E / (1 + delta)`` over the step, raised to stable's own share in
the slice (a stall both versions share). A canary that is stable slowed by ``1 + delta``
puts exactly that share beyond ``E``; at ``E = (1 + delta) p99_stable`` it is 1 %. The
bound below ``E`` is read the same way while stable's share there is at most 10 % (about
its p90), and each slice counts the mean of the two outcomes: more counts, same rule.
Stable's share is interpolated inside its bucket, which in a falling tail over-states it:
the reference is never too low, so the buckets cause no false rollback. What it costs:
the test sees a regression only somewhat above ``delta`` (about +22 % instead of +15 %
with 50 ms buckets around a 160 ms p99); docs/decision-model.md has the numbers.

**Bounds.** The safe weight reads the deltas at the unfavourable end of a ``slo.weight_confidence``
interval, the variance inflated by the slices' measured overdispersion (``dispersion``),
transients (``_kept``) and the warm-up left out. The p99 bound is the canary's share
beyond stable's p99 (upper Wilson bound) turned into a latency ratio with the tail slope
stable's histogram shows there (``histogram.tail_index``), over stable's p99 lower bound.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from canarypilot.analysis import histogram as hist
from canarypilot.analysis.sequential import (
    GAMBLERS,
    Bet,
    SliceObservation,
    average,
    bet,
    log_e_value,
    log_wealth_prefixes,
    rate_cap,
    slice_cap,
    visible,
)
from canarypilot.analysis.warmup import allowances
from canarypilot.model import SignalTest, Slice, ViolationKind
from canarypilot.policy import SLOPolicy

#: The bound below the test latency is read too while stable puts at most this share of its
#: requests beyond it over (1 + delta): about its p90, still the tail the SLO is about.
LOWER_EDGE_SHARE = 0.1
#: A slice in which stable itself put this share beyond its tail bound is a shared stall:
#: it says nothing about the canary either way.
SHARED_STALL = 0.5


@dataclass(frozen=True, slots=True)
class LatencyResult:
    test: SignalTest
    warmup_until: float | None
    warming_up: bool


def dispersion(k: Sequence[float], n: Sequence[float], *, reference: Sequence[float] | None = None) -> float:
    """Overdispersion of per-slice counts: 1 for independent requests, more when they move together
    (Pearson's chi-square over its degrees of freedom, at least 1). With ``reference`` (a share
    per slice, e.g. stable's in the same slice), each slice's expected count follows it, scaled
    to the counts' total, so variation the reference shares is not counted.

    >>> dispersion([1, 1, 1, 1], [100, 100, 100, 100])
    1.0
    >>> dispersion([0, 0, 0, 40], [100, 100, 100, 100]) > 10
    True
    >>> dispersion([1, 1, 1, 40], [100] * 4, reference=[0.01, 0.01, 0.01, 0.4])
    1.0
    """
    rows = [
        (ki, ni, 1.0 if reference is None else reference[i])
        for i, (ki, ni) in enumerate(zip(k, n, strict=True))
    ]
    used = [(ki, ni, ri) for ki, ni, ri in rows if ni > 0 and ri > 0]
    weight = sum(ni * ri for _, ni, ri in used)
    if len(used) < 2 or weight <= 0:
        return 1.0
    scale = sum(ki for ki, _, _ in used) / weight
    chi2 = 0.0
    for ki, ni, ri in used:
        p = min(1 - 1e-9, scale * ri)
        if p <= 0:
            return 1.0
        chi2 += (ki - ni * p) ** 2 / (ni * p * (1 - p))
    return max(1.0, chi2 / (len(used) - 1))


def _e(log_value: float) -> float:
    return math.exp(min(700.0, log_value))


def _wilson_upper(k: float, n: float, z: float) -> float:
    if n <= 0:
        return 1.0
    p = min(1.0, max(0.0, k / n))
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return min(1.0, (centre + spread) / (1 + z * z / n))


def error_test(slices: Sequence[Slice], *, slo: SLOPolicy, z: float, need: int) -> SignalTest | None:
    """The error signal's test over the step (``None`` without error counts for both versions)."""
    rows = [
        (s.stable.errors, s.stable.requests, s.canary.errors, s.canary.requests)
        for s in slices
        if all(v is not None and math.isfinite(v) and v >= 0 for v in (s.stable.errors, s.canary.errors))
    ]
    typed = [(float(a or 0), float(b or 0), float(c or 0), float(d or 0)) for a, b, c, d in rows]
    e_s, n_s = sum(r[0] for r in typed), sum(r[1] for r in typed)
    e_c, n_c = sum(r[2] for r in typed), sum(r[3] for r in typed)
    if not typed or n_s <= 0:
        return None
    base = e_s / n_s
    observations = []
    for es, ns, ec, nc in typed:
        r = max(base, es / ns if ns > 0 else base) + slo.max_error_delta
        observations.append(SliceObservation(ec, nc if r < SHARED_STALL else 0.0, r))
    outcomes = _bets(observations, slo.alpha, need, rates=True)
    log_e = log_e_value(log_wealth_prefixes(outcomes), 0, len(observations))
    kept = [typed[i] for i in _kept(range(len(typed)), outcomes, slo.alpha, need)]
    point = bound = None
    k_c, m_c = sum(r[2] for r in kept), sum(r[3] for r in kept)
    if m_c > 0:
        point = k_c / m_c - base
        inflate_c = dispersion([r[2] for r in kept], [r[3] for r in kept])
        inflate_s = dispersion([r[0] for r in typed], [r[1] for r in typed])
        pc, ps = (k_c + 1) / (m_c + 2), (e_s + 1) / (n_s + 2)
        se = math.sqrt(inflate_c * pc * (1 - pc) / (m_c + 2) + inflate_s * ps * (1 - ps) / (n_s + 2))
        bound = point + z * se
    used = sum(1 for o in observations if o.n > 0)
    limit = min(1.0, base + slo.max_error_delta)
    return SignalTest(
        kind=ViolationKind.ERRORS,
        e_value=_e(log_e),
        rejects=log_e >= math.log(1 / slo.alpha) and used >= need,
        point=point,
        bound=bound,
        threshold=slo.max_error_delta,
        slices=used,
        requests=n_c,
        basis=f"{e_c:.0f} canary errors, stable {base:.2%}",
        beyond=visible(k_c, m_c, limit),
        latest_beyond=_latest_visible(outcomes),
    )


@dataclass(frozen=True, slots=True)
class _EdgeTest:
    """The latency test at the bound ``edge``: its log e-value, each slice's outcome, where
    the warm-up ends (for the bounds) and whether the newest slice is still in it."""

    log_e: float
    outcomes: list[Bet]
    start: int
    warming_up: bool
    #: Per slice: the canary's requests beyond the test latency, and its requests.
    beyond: list[float] = field(default_factory=list)
    totals: list[float] = field(default_factory=list)
    #: Stable's share beyond the test latency over (1 + delta) over the step.
    base: float = 0.0


def _edge_outcomes(
    rows: Sequence[Slice],
    stable_pool: hist.Buckets,
    stable: Sequence[hist.Buckets],
    canary: Sequence[hist.Buckets],
    edge: float,
    *,
    slo: SLOPolicy,
    need: int,
    since: float,
) -> tuple[list[Bet], list[float], list[float], float]:
    """Each slice's bet at the bound ``edge``, with the shares, allowances and the
    step's reference share they were read against."""
    delta = slo.max_latency_delta
    # Stable's share beyond E / (1 + delta) over the step, half a request added so an empty
    # tail is not a zero reference.
    n_all = hist.total(stable_pool)
    base = (n_all * (hist.tail_share_beyond(stable_pool, edge / (1 + delta)) or 0.0) + 0.5) / (n_all + 1)
    n = [hist.total(b) for b in canary]
    beyond = [max(0.0, t - hist.count_at_or_below(b, edge)) for b, t in zip(canary, n, strict=True)]
    shares = [k / t if t > 0 else 0.0 for k, t in zip(beyond, n, strict=True)]
    allowed = allowances(
        shares,
        [(s.start + s.end) / 2 - since for s in rows],
        seed=max(1, need - 1),
        max_warmup=slo.max_warmup_seconds,
    )
    observations = []
    for b_s, k, total, allowance in zip(stable, beyond, n, allowed, strict=True):
        reference = max(base, allowance, hist.tail_share_beyond(b_s, edge / (1 + delta)) or 0.0)
        observations.append(SliceObservation(k, total if reference < SHARED_STALL else 0.0, reference))
    return _bets(observations, slo.alpha, need, rates=False), shares, allowed, base


#: The median of a chi-square variable with one degree of freedom.
_CHI2_1_MEDIAN = 0.4549


def typical_dispersion(observations: Sequence[SliceObservation]) -> float:
    """The overdispersion of a *typical* slice: the median squared Pearson residual of the
    counts around their references (scaled to the counts' total), over its value for
    independent requests; at least 1. A stall or a burst in a few slices does not move it
    (they are the cap's business); counts that swing in most slices do.

    >>> typical_dispersion([SliceObservation(k, 300, 0.02) for k in (6, 5, 7, 6, 60)])
    1.0
    >>> typical_dispersion([SliceObservation(k, 300, 0.02) for k in (1, 15, 2, 14, 18)]) > 2
    True
    """
    used = [o for o in observations if o.n > 0 and 0 < o.r < 1]
    if len(used) < 2:
        return 1.0
    scale = statistics.median(o.k / (o.n * o.r) for o in used)
    if scale <= 0:
        return 1.0
    squares = [(o.k - scale * o.n * o.r) ** 2 / (scale * o.n * o.r) for o in used]
    return max(1.0, statistics.median(squares) / _CHI2_1_MEDIAN)


def _bets(observations: Sequence[SliceObservation], alpha: float, need: int, *, rates: bool) -> list[Bet]:
    """Each slice's bet. With ``rates`` (errors), the rate gamblers read the counts over the
    canary's typical overdispersion around its references (``typical_dispersion``); without
    (latency), they sit out and only the bet on the mean is placed: slow requests come in
    stretches (warm-ups, GC, queueing) that independent draws do not describe. Measured:
    with rate gamblers on latency too, 10 of 143 slow 3-minute warm-ups were rolled back
    (2 without), for no gain in time to detect on the built-in suite."""
    spread = typical_dispersion(observations) if rates else 1.0
    cap, top = slice_cap(alpha, need), rate_cap(alpha, need) if rates else None
    return [bet(o, cap, top, spread=spread) for o in observations]


def _edge_test(
    rows: Sequence[Slice],
    stable_pool: hist.Buckets,
    stable: Sequence[hist.Buckets],
    canary: Sequence[hist.Buckets],
    edge: float,
    *,
    slo: SLOPolicy,
    need: int,
    since: float,
) -> _EdgeTest:
    """The test at ``edge``, and at the bound below it when stable puts at most
    ``LOWER_EDGE_SHARE`` of its requests beyond that bound over ``1 + delta`` (it is still
    in the tail): each slice's outcome is the mean of the two, itself of mean at most 0 for
    a canary within the SLO, and the lower bound's counts are several times larger."""
    outcomes, shares, allowed, base = _edge_outcomes(
        rows, stable_pool, stable, canary, edge, slo=slo, need=need, since=since
    )
    totals = [hist.total(b) for b in canary]
    lower = max((b for b, _ in stable_pool if b < edge), default=0.0)
    delta = slo.max_latency_delta
    if lower > 0 and (hist.tail_share_beyond(stable_pool, lower / (1 + delta)) or 1.0) <= LOWER_EDGE_SHARE:
        low, _, _, _ = _edge_outcomes(
            rows, stable_pool, stable, canary, lower, slo=slo, need=need, since=since
        )
        outcomes = [average(a, b) for a, b in zip(outcomes, low, strict=True)]
    # The bounds read the slices after the last one the allowance excused (in excess of
    # stable's share, and covered by it); the newest one so: warming up.
    excused = [
        i
        for i, (a, x, t) in enumerate(zip(allowed, shares, totals, strict=True))
        if a > base and visible(x * t, t, base)
    ]
    log_e = log_e_value(log_wealth_prefixes(outcomes), 0, len(rows))
    start = max((i + 1 for i in excused), default=0)
    beyond = [s * t for s, t in zip(shares, totals, strict=True)]
    return _EdgeTest(
        log_e, outcomes, start, bool(excused) and excused[-1] == len(rows) - 1, beyond, totals, base
    )


@lru_cache(maxsize=4096)
def _readable(buckets: hist.Buckets | None) -> hist.Buckets | None:
    """A slice's histogram made monotone, or ``None`` when it cannot be read. Remembered:
    every analysis of a step reads the same slices again (a replayed day, 5,690 times).
    4,096 entries (about 20 MB at 20 buckets) hold a step of hours for both versions."""
    return hist.monotone(buckets) if buckets is not None and hist.valid(buckets) else None


def latency_test(
    slices: Sequence[Slice], *, slo: SLOPolicy, quantile: float, z: float, need: int, since: float
) -> LatencyResult | None:
    """The latency signal's test, after the warm-up (``None`` without histograms for both)."""
    read = [(_readable(s.stable.buckets), _readable(s.canary.buckets), s) for s in slices]
    rows = [s for a, b, s in read if a is not None and b is not None]
    stable = [a for a, b, _ in read if a is not None and b is not None]
    canary = [b for a, b, _ in read if a is not None and b is not None]
    stable_pool, canary_pool = hist.add(stable), hist.add(canary)
    if not rows or stable_pool is None or canary_pool is None:
        return None
    tail, delta = 1.0 - quantile, slo.max_latency_delta
    stable_p99 = hist.quantile(stable_pool, quantile)
    if stable_p99 is None or stable_p99 <= 0:
        return None
    edge = hist.bound_at_or_above(canary_pool, (1 + delta) * stable_p99)
    tested = _EdgeTest(0.0, [Bet(0.0, (1.0,) * GAMBLERS)] * len(rows), 0, False)
    if edge is not None:
        tested = _edge_test(rows, stable_pool, stable, canary, edge, slo=slo, need=need, since=since)

    # The p99 bound: the canary's share beyond stable's p99 at its upper Wilson bound, as a
    # latency ratio through stable's tail slope, over stable's p99 at its lower bound. That
    # bound is stable's sampling error only: swings both versions shared (a stall, load jitter)
    # are in the canary's paired dispersion below, and counting them here too held identical
    # versions' bounds far outside the SLO.
    n_stable = [hist.total(b) for b in stable]
    margin = z * math.sqrt(quantile * tail / sum(n_stable))
    stable_low = hist.quantile(stable_pool, max(quantile - margin, 1e-9)) or stable_p99
    n = [hist.total(b) for b in canary]
    beyond_p99 = [max(0.0, t - hist.count_at_or_below(b, stable_p99)) for b, t in zip(canary, n, strict=True)]
    start = max(tested.start, _warm_slices(rows, beyond_p99, n, tail, slo=slo, need=need, since=since))
    kept = _kept(range(start, len(rows)), tested.outcomes, slo.alpha, need)
    k_kept, n_kept = sum(beyond_p99[i] for i in kept), sum(n[i] for i in kept)
    point = bound = None
    if n_kept > 0:
        canary_p99 = hist.quantile(hist.add(canary[i] for i in kept) or canary_pool, quantile)
        point = None if canary_p99 is None else canary_p99 / stable_p99 - 1
        # Overdispersion against stable's own share in each slice: what both versions felt
        # together (a shared stall, load jitter) is not the canary's uncertainty.
        paired = [hist.share_beyond(stable[i], stable_p99) or 0.0 for i in kept]
        spread = math.sqrt(dispersion([beyond_p99[i] for i in kept], [n[i] for i in kept], reference=paired))
        share_high = _wilson_upper(k_kept, n_kept, z * spread)
        index = hist.tail_index(stable_pool, stable_p99)
        bound = stable_p99 * (share_high / tail) ** (1 / index) / stable_low - 1

    counted = len(rows) - start
    past = [i for i in kept if i < len(tested.beyond)]
    beyond = visible(sum(tested.beyond[i] for i in past), sum(tested.totals[i] for i in past), tested.base)
    basis = f"{k_kept:.0f} of {n_kept:.0f} canary requests beyond stable's p99 {stable_p99 * 1000:.0f} ms; "
    basis += (
        f"test latency {edge * 1000:g} ms" if edge else "no bucket bound above the SLO's latency: untested"
    )
    if start:
        basis += f"; first {start} slice(s) in the warm-up allowance"
    if counted > len(kept):
        basis += f"; {counted - len(kept)} transient slice(s) left out of the bound"
    test = SignalTest(
        kind=ViolationKind.LATENCY,
        e_value=_e(tested.log_e),
        rejects=tested.log_e >= math.log(1 / slo.alpha) and len(rows) >= need,
        point=point,
        bound=bound,
        threshold=delta,
        slices=counted,
        requests=n_kept,
        basis=basis,
        beyond=beyond,
        latest_beyond=_latest_visible(tested.outcomes),
    )
    return LatencyResult(test, rows[start - 1].end if start else None, tested.warming_up)


def _warm_slices(
    rows: Sequence[Slice],
    beyond: Sequence[float],
    n: Sequence[float],
    tail: float,
    *,
    slo: SLOPolicy,
    need: int,
    since: float,
) -> int:
    """How many leading slices the p99 bound leaves out as warm-up: up to the last one in which
    the canary put more than twice the quantile's share beyond stable's p99 while the same
    fading allowance (``warmup.allowances``, read on that share) still covered it, and the
    excess was visible (``visible``), not one unlucky request among few. The test
    reads the bucket bound above the SLO; the bound reads stable's p99, where a fading warm-up
    shows longer."""
    shares = [k / t if t > 0 else 0.0 for k, t in zip(beyond, n, strict=True)]
    allowed = allowances(
        shares,
        [(s.start + s.end) / 2 - since for s in rows],
        seed=max(1, need - 1),
        max_warmup=slo.max_warmup_seconds,
    )
    twice = 2 * tail
    return max(
        (
            i + 1
            for i, (a, k, t) in enumerate(zip(allowed, beyond, n, strict=True))
            if a > twice and visible(k, t, twice)
        ),
        default=0,
    )


def _latest_visible(bets: Sequence[Bet]) -> bool:
    """Whether the newest slice's count is visibly above its reference."""
    return bool(bets) and bets[-1].visible


def _kept(indices: Iterable[int], outcomes: Sequence[Bet], alpha: float, need: int) -> list[int]:
    """The slices the bounds read: all, but for a transient — at most ``need - 1`` slices whose
    excess reached the per-slice cap, the most a burst the test ignores can touch. More capped
    slices than that are the canary's behaviour, not a transient, and all are read."""
    chosen = list(indices)
    cap = slice_cap(alpha, need)
    capped = {i for i in chosen if outcomes[i].u >= cap - 1e-9}
    if not capped or len(capped) >= need:
        return chosen
    return [i for i in chosen if i not in capped]
