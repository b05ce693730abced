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
puts exactly that share beyond ``E``; at ``E = (1 + delta) p99_stable`` it is 1 %.
Stable's share is interpolated inside its bucket, which in a falling tail over-states it:
the reference is never too low, so the buckets cause no false rollback. What it costs:
the test sees a regression only somewhat above ``delta`` (about +22 % instead of +15 %
with 50 ms buckets around a 160 ms p99); docs/decision-model.md has the numbers.

**Bounds.** The safe weight reads the deltas at the unfavourable end of a ``1 - alpha``
interval, the variance inflated by the slices' measured overdispersion (``dispersion``),
transients (``_kept``) and the warm-up left out. The p99 bound is the canary's share
beyond stable's p99 (upper Wilson bound) turned into a latency ratio with the tail slope
stable's histogram shows there (``histogram.tail_index``), over stable's p99 lower bound.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from canarypilot.analysis import histogram as hist
from canarypilot.analysis.sequential import (
    SliceObservation,
    excess,
    log_e_value,
    log_wealth_prefixes,
    slice_cap,
)
from canarypilot.analysis.warmup import allowances
from canarypilot.model import SignalTest, Slice, ViolationKind
from canarypilot.policy import SLOPolicy

#: A slice in which stable itself put this share beyond its tail bound is a shared stall:
#: it says nothing about the canary either way.
SHARED_STALL = 0.5


@dataclass(frozen=True, slots=True)
class LatencyResult:
    test: SignalTest
    warmup_until: float | None
    warming_up: bool


def dispersion(k: Sequence[float], n: Sequence[float]) -> float:
    """Overdispersion of per-slice counts: 1 for independent requests, more when they move together
    (Pearson's chi-square over its degrees of freedom, at least 1).

    >>> dispersion([1, 1, 1, 1], [100, 100, 100, 100])
    1.0
    >>> dispersion([0, 0, 0, 40], [100, 100, 100, 100]) > 10
    True
    """
    used = [(ki, ni) for ki, ni in zip(k, n, strict=True) if ni > 0]
    n_sum = sum(ni for _, ni in used)
    if len(used) < 2 or n_sum <= 0:
        return 1.0
    p = sum(ki for ki, _ in used) / n_sum
    if not 0 < p < 1:
        return 1.0
    chi2 = sum((ki - ni * p) ** 2 / (ni * p * (1 - p)) for ki, ni in used)
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
    cap = slice_cap(slo.alpha, need)
    outcomes = [excess(o, cap) for o in observations]
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
    )


def latency_test(
    slices: Sequence[Slice], *, slo: SLOPolicy, quantile: float, z: float, need: int, since: float
) -> LatencyResult | None:
    """The latency signal's test, after the warm-up (``None`` without histograms for both)."""
    rows = [s for s in slices if hist.valid(s.stable.buckets) and hist.valid(s.canary.buckets)]
    stable = [s.stable.buckets for s in rows if s.stable.buckets]
    canary = [s.canary.buckets for s in rows if s.canary.buckets]
    stable_pool, canary_pool = hist.add(stable), hist.add(canary)
    if not rows or stable_pool is None or canary_pool is None:
        return None
    tail, delta = 1.0 - quantile, slo.max_latency_delta
    stable_p99 = hist.quantile(stable_pool, quantile)
    if stable_p99 is None or stable_p99 <= 0:
        return None
    n_stable = [hist.total(b) for b in stable]
    stable_tail = [t - hist.count_at_or_below(b, stable_p99) for b, t in zip(stable, n_stable, strict=True)]
    margin = z * math.sqrt(dispersion(stable_tail, n_stable) * quantile * tail / sum(n_stable))
    stable_low = hist.quantile(stable_pool, max(quantile - margin, 1e-9)) or stable_p99
    edge = hist.bound_at_or_above(canary_pool, (1 + delta) * stable_p99)

    n = [hist.total(b) for b in canary]
    beyond_p99 = [max(0.0, t - hist.count_at_or_below(b, stable_p99)) for b, t in zip(canary, n, strict=True)]
    log_e, outcomes, start, warming_up = 0.0, [0.0] * len(rows), 0, False
    base = tail
    if edge is not None:
        # Stable's share beyond E / (1 + delta) over the step, half a request added so an
        # empty tail is not a zero reference.
        n_all = hist.total(stable_pool)
        base = (n_all * (hist.tail_share_beyond(stable_pool, edge / (1 + delta)) or 0.0) + 0.5) / (n_all + 1)
        beyond = [max(0.0, t - hist.count_at_or_below(b, edge)) for b, t in zip(canary, n, strict=True)]
        shares = [k / t if t > 0 else 0.0 for k, t in zip(beyond, n, strict=True)]
        allowed = allowances(
            shares,
            [(s.start + s.end) / 2 - since for s in rows],
            seed=max(1, need - 1),
            max_warmup=slo.max_warmup_seconds,
        )
        observations = []
        for b_s, k, total, excused in zip(stable, beyond, n, allowed, strict=True):
            reference = max(base, excused, hist.tail_share_beyond(b_s, edge / (1 + delta)) or 0.0)
            observations.append(SliceObservation(k, total if reference < SHARED_STALL else 0.0, reference))
        cap = slice_cap(slo.alpha, need)
        outcomes = [excess(o, cap) for o in observations]
        log_e = log_e_value(log_wealth_prefixes(outcomes), 0, len(rows))
        # The bounds read the slices after the warm-up: after the last one the allowance
        # excused (in excess of stable's share, and covered). The newest one so: warming up.
        excused_slices = [
            i for i, (a, x) in enumerate(zip(allowed, shares, strict=True)) if a > base and x > base
        ]
        start = max((i + 1 for i in excused_slices), default=0)
        warming_up = allowed[-1] > base and shares[-1] > base

    kept = _kept(range(start, len(rows)), outcomes, slo.alpha, need)
    k_kept, n_kept = sum(beyond_p99[i] for i in kept), sum(n[i] for i in kept)
    point = bound = None
    if n_kept > 0:
        canary_p99 = hist.quantile(hist.add(canary[i] for i in kept) or canary_pool, quantile)
        point = None if canary_p99 is None else canary_p99 / stable_p99 - 1
        spread = math.sqrt(dispersion([beyond_p99[i] for i in kept], [n[i] for i in kept]))
        share_high = _wilson_upper(k_kept, n_kept, z * spread)
        index = hist.tail_index(stable_pool, stable_p99)
        bound = stable_p99 * (share_high / tail) ** (1 / index) / stable_low - 1
    counted = len(rows) - start
    basis = (
        f"{k_kept:.0f} of {n_kept:.0f} canary requests beyond stable's p99 {stable_p99 * 1000:.0f} ms; "
        + (
            f"test latency {edge * 1000:g} ms"
            if edge
            else "no bucket bound above the SLO's latency: untested"
        )
    )
    if start:
        basis += f"; first {start} slice(s) in the warm-up allowance"
    if counted - len(kept) > 0:
        basis += f"; {counted - len(kept)} transient slice(s) left out of the bound"
    test = SignalTest(
        kind=ViolationKind.LATENCY,
        e_value=_e(log_e),
        rejects=log_e >= math.log(1 / slo.alpha) and len(rows) >= need,
        point=point,
        bound=bound,
        threshold=delta,
        slices=counted,
        requests=n_kept,
        basis=basis,
    )
    return LatencyResult(test, rows[start - 1].end if start else None, warming_up)


def _kept(indices: Iterable[int], outcomes: Sequence[float], alpha: float, need: int) -> list[int]:
    """The slices the bounds read: all, but for a transient — at most ``need - 1`` slices whose
    excess reached the per-slice cap, the most a burst the test ignores can touch. More capped
    slices than that are the canary's behaviour, not a transient, and all are read."""
    chosen = list(indices)
    cap = slice_cap(alpha, need)
    capped = {i for i in chosen if outcomes[i] >= cap - 1e-9}
    if not capped or len(capped) >= need:
        return chosen
    return [i for i in chosen if i not in capped]
