"""The two signals' tests: what each slice counts against the canary, and the bounds.

**Errors.** In each slice, the canary's errors out of its requests against the reference
``r = max(stable's error rate over the step, stable's in the slice) + max_error_delta``:
a canary within the SLO errs at most that often, and an error burst both versions share
raises the reference with it.

**Latency.** Within the SLO means ``p99_canary <= (1 + max_latency_delta) p99_stable``:
at most 1 % of the canary's requests beyond that latency. Stable's p99 is read from its
histogram over the step at a rank raised by its own sampling noise, and the test latency
``E`` is the first bucket bound at or above ``(1 + max_latency_delta)`` times it: canary
requests beyond a bound are counted exactly, and ``E`` is never below the SLO's latency,
so a canary within the SLO puts at most 1 % there — no false rollback from the buckets.
The cost is power: only a canary whose p99 exceeds ``E`` is seen, so with buckets a ratio
``rho`` apart the smallest visible regression lies between ``max_latency_delta`` and
``(1 + max_latency_delta) rho - 1`` (+25 % for a 160 ms p99 between 150 and 200 ms bounds).
The reference is ``max(1 %, stable's share beyond E / (1 + max_latency_delta) in the
slice)``: in a slice where both versions stalled, stable's tail grew too.

**Bounds.** The safe weight reads the deltas at the unfavourable end of a ``1 - alpha``
interval, with the variance inflated by the slices' measured overdispersion
(``warmup.dispersion``). The p99 bound is the canary's share beyond stable's p99 (upper
Wilson bound) turned into a latency ratio with the tail slope stable's histogram shows
there (``histogram.tail_index``), over stable's p99 lower bound.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from canarypilot.analysis import histogram as hist
from canarypilot.analysis.sequential import (
    SliceObservation,
    excess,
    log_e_value,
    log_wealth_prefixes,
    slice_cap,
)
from canarypilot.analysis.warmup import dispersion, warmup_end
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


def _test_log_e(observations: Sequence[SliceObservation], alpha: float, need: int) -> list[list[float]]:
    cap = slice_cap(alpha, need)
    return log_wealth_prefixes([excess(o, cap) for o in observations])


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
    prefixes = _test_log_e(observations, slo.alpha, need)
    log_e = log_e_value(prefixes, 0, len(observations))
    point = bound = None
    if n_c > 0:
        point = e_c / n_c - base
        inflate_c = dispersion([r[2] for r in typed], [r[3] for r in typed])
        inflate_s = dispersion([r[0] for r in typed], [r[1] for r in typed])
        pc, ps = (e_c + 1) / (n_c + 2), (e_s + 1) / (n_s + 2)
        se = math.sqrt(inflate_c * pc * (1 - pc) / (n_c + 2) + inflate_s * ps * (1 - ps) / (n_s + 2))
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
    stable_pool = hist.add(s.stable.buckets for s in rows if s.stable.buckets)
    canary_pool = hist.add(s.canary.buckets for s in rows if s.canary.buckets)
    if not rows or stable_pool is None or canary_pool is None:
        return None
    tail, delta = 1.0 - quantile, slo.max_latency_delta
    stable_p99 = hist.quantile(stable_pool, quantile)
    n_s = hist.total(stable_pool)
    if stable_p99 is None or stable_p99 <= 0:
        return None
    stable_tail = [hist.total(b) - hist.count_at_or_below(b, stable_p99) for b in _buckets(rows, "stable")]
    margin = z * math.sqrt(
        dispersion(stable_tail, [hist.total(b) for b in _buckets(rows, "stable")]) * quantile * tail / n_s
    )
    stable_high = hist.quantile(stable_pool, min(quantile + margin, 1 - 1e-9)) or stable_p99
    stable_low = hist.quantile(stable_pool, max(quantile - margin, 1e-9)) or stable_p99
    edge = hist.bound_at_or_above(canary_pool, (1 + delta) * stable_high)

    canary = list(_buckets(rows, "canary"))
    n = [hist.total(b) for b in canary]
    beyond_p99 = [max(0.0, t - hist.count_at_or_below(b, stable_p99)) for b, t in zip(canary, n, strict=True)]
    allowance = sum(1 for s in rows if s.start < since + slo.max_warmup_seconds)
    start = warmup_end(_beyond(canary, n, edge) if edge else beyond_p99, n, tail, allowance)
    warming_up = bool(rows) and start >= len(rows)

    log_e = 0.0
    if edge is not None and not warming_up:
        observations = []
        for s, b, total in zip(rows, canary, n, strict=True):
            reference = max(tail, hist.share_beyond(s.stable.buckets, edge / (1 + delta)) or 0.0)  # type: ignore[arg-type]
            k = max(0.0, total - hist.count_at_or_below(b, edge))
            observations.append(SliceObservation(k, total if reference < SHARED_STALL else 0.0, reference))
        prefixes = _test_log_e(observations, slo.alpha, need)
        # A rollback needs the test from the weight change *and* from every start up to the
        # warm-up's end to reject: the weakest of them is the evidence.
        log_e = min(log_e_value(prefixes, s, len(rows)) for s in range(start + 1))

    after = slice(start, len(rows))
    k_after, n_after = sum(beyond_p99[after]), sum(n[after])
    point = bound = None
    if n_after > 0:
        canary_p99 = hist.quantile(hist.add(canary[after]) or canary_pool, quantile)
        point = None if canary_p99 is None else canary_p99 / stable_p99 - 1
        spread = math.sqrt(dispersion(beyond_p99[after], n[after]))
        share_high = _wilson_upper(k_after, n_after, z * spread)
        index = hist.tail_index(stable_pool, stable_p99)
        bound = stable_p99 * (share_high / tail) ** (1 / index) / stable_low - 1
    counted = len(rows) - start
    basis = (
        f"{k_after:.0f} of {n_after:.0f} canary requests beyond stable's p99 {stable_p99 * 1000:.0f} ms; "
        + (
            f"test latency {edge * 1000:g} ms"
            if edge
            else "no bucket bound above the SLO's latency: untested"
        )
    )
    if start:
        basis += f"; first {start} slice(s) held as warm-up"
    test = SignalTest(
        kind=ViolationKind.LATENCY,
        e_value=_e(log_e),
        rejects=not warming_up and log_e >= math.log(1 / slo.alpha) and counted >= need,
        point=point,
        bound=bound,
        threshold=delta,
        slices=counted if not warming_up else 0,
        requests=n_after,
        basis=basis,
    )
    until = rows[start - 1].end if start else None
    return LatencyResult(test, until, warming_up)


def _buckets(rows: Sequence[Slice], version: str) -> list[hist.Buckets]:
    out: list[hist.Buckets] = []
    for s in rows:
        buckets = s.stable.buckets if version == "stable" else s.canary.buckets
        assert buckets is not None
        out.append(buckets)
    return out


def _beyond(canary: Sequence[hist.Buckets], n: Sequence[float], edge: float) -> list[float]:
    return [max(0.0, t - hist.count_at_or_below(b, edge)) for b, t in zip(canary, n, strict=True)]
