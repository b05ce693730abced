"""How much a decision's deltas can be trusted, given how many requests are behind them.

The judge compares point estimates with the thresholds, as DESIGN.md says. A
point estimate from a few hundred requests is mostly noise, though: a p99 from
450 requests is set by its 4 or 5 slowest ones. This module puts a confidence
interval around each delta so the breaker can tell a reading that is *beyond
the noise* from one that merely crossed a line.

* **Errors** are counts: a two-proportion interval (Agresti-Caffo: one error
  and one success added to each version, which keeps zero-error samples
  honest) around ``error_canary - error_stable``.
* **Latency** is a quantile. Of ``n`` requests, ``k = n (1 - q)`` are slower
  than the sample p99; how many of them the *true* distribution puts there is
  uncertain like a Poisson count (binomial with a small rate): its confidence
  bounds ``[L, U]`` around ``k`` are Garwood's (chi-square quantiles, here by the
  Wilson-Hilferty formula), wide and lopsided when ``k`` is a handful. If the
  share of requests slower than ``x`` falls like ``x^-a`` near the quantile
  (``a`` = ``slo.latency_tail_index``), the true p99 lies between
  ``p99 * (L/k)^(1/a)`` and ``p99 * (U/k)^(1/a)``. The two versions' log
  offsets add in quadrature.

Three readings per signal, at ``z = slo.confidence_z`` standard errors:

* ``beyond_noise`` — the lower bound of the delta is above zero: the canary is
  really worse than stable (statistical significance);
* ``conclusive_violation`` — the lower bound is above the threshold: even the
  favourable end of the interval breaks the SLO;
* ``conclusive_severe`` — severe beyond doubt: for latency the lower bound is
  above ``severe_factor`` times the threshold; for errors the lower bound is
  above the threshold and the estimate above ``severe_factor`` times it;
* ``conclusive_pass`` — the upper bound is at or below the threshold: even the
  unfavourable end is within the SLO.

Pure arithmetic on the decision's numbers; no I/O, no clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from canarypilot.model import Decision, VersionStats, ViolationKind
from canarypilot.policy import SLOPolicy

_SLO = SLOPolicy()

#: How an interval was computed (``SignalEvidence.method``).
Method = Literal["binomial", "order-statistic", "exceedance"]


@dataclass(frozen=True, slots=True)
class SignalEvidence:
    """One signal's delta with its confidence interval and the samples behind it.

    ``samples`` is what the interval's width depends on: the canary's expected
    tail requests for latency, its requests for errors.
    """

    kind: ViolationKind
    delta: float
    low: float
    high: float
    threshold: float
    samples: float
    min_samples: float = 0.0
    severe_threshold: float = float("inf")
    #: How the interval was computed: ``binomial`` (errors), ``order-statistic`` (latency,
    #: from the two p99s) or ``exceedance`` (latency, from the histograms).
    method: Method = "binomial"
    #: What the interval was computed from, when not the default for its kind.
    basis: str = ""

    @property
    def beyond_noise(self) -> bool:
        """The canary is worse than stable by more than the noise of its sample."""
        return self.low > 0

    @property
    def conclusive_violation(self) -> bool:
        """Even the favourable end of the interval breaks the threshold."""
        return self.low > self.threshold and self.samples >= self.min_samples

    @property
    def conclusive_severe(self) -> bool:
        """Severe beyond doubt: no need for a second window.

        Latency: even the favourable end of the interval is severe — the interval leans
        on an assumed tail shape, and a stall of a few seconds (a GC pause, a noisy
        neighbour) is real but passes. Errors: the interval is a plain binomial one, so
        a conclusive violation whose estimate is severe is enough.
        """
        if self.samples < self.min_samples:
            return False
        if self.kind is ViolationKind.LATENCY:
            return self.low > self.severe_threshold
        return self.low > self.threshold and self.delta > self.severe_threshold

    @property
    def conclusive_pass(self) -> bool:
        """Even the unfavourable end of the interval is within the threshold."""
        return self.high <= self.threshold and self.samples >= self.min_samples

    def describe(self) -> str:
        """E.g. ``p99 delta +25.0% (interval -1.5% .. +58.6%, 4.5 canary requests beyond the quantile)``."""
        if self.kind is ViolationKind.LATENCY:
            basis = self.basis or f"{self.samples:.1f} canary requests beyond the quantile"
            return f"p99 delta {self.delta:+.1%} (interval {self.low:+.1%} .. {self.high:+.1%}, {basis})"
        return (
            f"error delta {self.delta * 100:+.2f} points (interval {self.low * 100:+.2f} .. "
            f"{self.high * 100:+.2f}, {self.samples:.0f} canary requests)"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "delta": self.delta,
            "low": self.low,
            "high": self.high,
            "threshold": self.threshold,
            "samples": self.samples,
            "method": self.method,
            "beyond_noise": self.beyond_noise,
            "conclusive_violation": self.conclusive_violation,
            "conclusive_severe": self.conclusive_severe,
            "conclusive_pass": self.conclusive_pass,
        }


@dataclass(frozen=True, slots=True)
class Evidence:
    """Both signals' intervals for one decision (``None`` when a signal has no data)."""

    latency: SignalEvidence | None
    errors: SignalEvidence | None
    #: The latency interval a conclusive pass is read from, when not ``latency``'s
    #: (``slo.latency_evidence: hybrid``).
    latency_pass: SignalEvidence | None = None

    def of(self, kind: ViolationKind) -> SignalEvidence | None:
        return self.latency if kind is ViolationKind.LATENCY else self.errors

    @property
    def conclusive_pass(self) -> bool:
        """Both signals are conclusively within the SLO: the weight may advance early."""
        latency = self.latency_pass or self.latency
        return all(s is not None and s.conclusive_pass for s in (latency, self.errors))

    def to_dict(self) -> dict[str, Any]:
        return {
            "latency": None if self.latency is None else self.latency.to_dict(),
            "errors": None if self.errors is None else self.errors.to_dict(),
            "latency_pass": None if self.latency_pass is None else self.latency_pass.to_dict(),
        }


def _count(stats: VersionStats) -> float | None:
    n = stats.requests
    return n if n is not None and math.isfinite(n) and n > 0 else None


def latency_evidence(
    stable: VersionStats, canary: VersionStats, *, quantile: float = 0.99, slo: SLOPolicy = _SLO
) -> SignalEvidence | None:
    """The relative p99 delta with its order-statistic interval.

    >>> s = VersionStats("v1", 0.200, 0.0, 20_000)
    >>> e = latency_evidence(s, VersionStats("v2", 0.250, 0.0, 450))
    >>> round(e.delta, 3), e.beyond_noise, e.conclusive_violation
    (0.25, False, False)
    >>> latency_evidence(s, VersionStats("v2", 0.250, 0.0, 10_000)).conclusive_violation
    True
    """
    if slo.latency_evidence != "quantile":
        found = exceedance_evidence(stable, canary, quantile=quantile, slo=slo)
        if found is not None:
            return found
    return quantile_evidence(stable, canary, quantile=quantile, slo=slo)


def quantile_evidence(
    stable: VersionStats, canary: VersionStats, *, quantile: float = 0.99, slo: SLOPolicy = _SLO
) -> SignalEvidence | None:
    """The relative p99 delta with the order-statistic interval around the two p99s."""
    n_s, n_c = _count(stable), _count(canary)
    p_s, p_c = stable.p99_seconds, canary.p99_seconds
    if n_s is None or n_c is None or p_s is None or p_c is None:
        return None
    if not (math.isfinite(p_s) and math.isfinite(p_c)) or p_s <= 0 or p_c <= 0:
        return None
    tail = 1.0 - quantile
    k_s, k_c = n_s * tail, n_c * tail
    index, z = slo.latency_tail_index, slo.confidence_z
    c_down, c_up = _log_offsets(k_c, z, index)
    s_down, s_up = _log_offsets(k_s, z, index)
    ratio = math.log(p_c / p_s)
    # The canary is "really slower" only if its p99 may be this much lower and stable's this
    # much higher, and vice versa for "really within".
    low = ratio - math.hypot(c_down, s_up)
    high = ratio + math.hypot(c_up, s_down)
    return SignalEvidence(
        kind=ViolationKind.LATENCY,
        delta=p_c / p_s - 1.0,
        low=_expm1(low),
        high=_expm1(high),
        threshold=slo.max_latency_delta,
        samples=k_c,
        min_samples=slo.min_tail_requests,
        severe_threshold=slo.severe_factor * slo.max_latency_delta,
        method="order-statistic",
    )


def tail_edge(
    stable: tuple[tuple[float, float], ...], canary: tuple[tuple[float, float], ...], tail: float
) -> tuple[float, float, float, float, float] | None:
    """The bucket bound nearest stable's ``1 - tail`` quantile, with the counts beyond it.

    Returns ``(bound, stable_beyond, stable_total, canary_beyond, canary_total)``: the
    finite bound both histograms share whose share of stable's requests above it is
    closest to ``tail`` (on a log scale), or ``None`` when there is none.
    """
    if not stable or not canary or stable[-1][0] != math.inf or canary[-1][0] != math.inf:
        return None  # not a whole histogram: the +Inf bucket holds the total
    canary_at = dict(canary)
    stable_total, canary_total = stable[-1][1], canary[-1][1]
    if not (stable_total > 0 and canary_total > 0):
        return None
    best: tuple[float, float] | None = None
    for bound, below in stable:
        if not math.isfinite(bound) or bound not in canary_at:
            continue
        beyond = stable_total - below
        if beyond <= 0:
            continue
        score = abs(math.log(beyond / stable_total / tail))
        if best is None or score < best[0]:
            best = (score, bound)
    if best is None:
        return None
    bound = best[1]
    stable_beyond = stable_total - dict(stable)[bound]
    return bound, stable_beyond, stable_total, max(0.0, canary_total - canary_at[bound]), canary_total


def exceedance_evidence(
    stable: VersionStats, canary: VersionStats, *, quantile: float = 0.99, slo: SLOPolicy = _SLO
) -> SignalEvidence | None:
    """The p99 delta read from how many canary requests land beyond stable's tail.

    Stable's histogram fixes a bucket bound near its p99 (thousands of requests make
    that precise); the canary's share of requests beyond it against stable's share is
    a ratio of two counts with exact Poisson bounds. A canary whose latencies are
    stable's times ``f`` puts ``f**a`` times stable's share beyond the bound when the
    tail falls like ``x**-a`` (``a`` = ``slo.latency_tail_index``), so the ratio's
    bounds map to p99 deltas ``ratio**(1/a) - 1``. *Beyond the noise* (the canary's
    tail is heavier than stable's) does not depend on ``a`` at all.

    Unlike the order-statistic interval, which rests on the handful of canary requests
    beyond the canary's own p99, this counts every canary request that is slower than
    stable's p99: a canary that really is 50 % slower puts several times more there.
    ``None`` without both histograms; the caller then falls back to the p99 interval.

    >>> edges = (0.1, 0.2, 0.4, math.inf)
    >>> hist = lambda *counts: tuple(zip(edges, counts))
    >>> s = VersionStats("v1", 0.2, 0.0, 10_000, latency_buckets=hist(9_000, 9_900, 9_990, 10_000))
    >>> c = VersionStats("v2", 0.3, 0.0, 300, latency_buckets=hist(250, 280, 299, 300))
    >>> e = exceedance_evidence(s, c)
    >>> e.beyond_noise, e.conclusive_violation, e.samples
    (True, True, 20.0)
    """
    if stable.latency_buckets is None or canary.latency_buckets is None:
        return None
    tail = 1.0 - quantile
    edge = tail_edge(stable.latency_buckets, canary.latency_buckets, tail)
    if edge is None:
        return None
    bound, k_s, n_s, k_c, n_c = edge
    z, index = slo.confidence_z, slo.latency_tail_index
    low_c, high_c = poisson_bounds(k_c, z)
    low_s, high_s = poisson_bounds(k_s, z)
    share_s = k_s / n_s
    # Bounds on log(canary share / stable share), the two counts' offsets in quadrature;
    # with no canary request beyond the bound, the plain upper bound.
    if k_c > 0:
        centre = math.log(k_c / n_c / share_s)
        down = math.inf if low_c <= 0 else math.hypot(math.log(k_c / low_c), math.log(high_s / k_s))
        up = math.hypot(math.log(high_c / k_c), math.inf if low_s <= 0 else math.log(k_s / low_s))
        low, high = centre - down, centre + up
    else:
        centre = low = -math.inf
        high = math.inf if low_s <= 0 else math.log(high_c / n_c) - math.log(low_s / n_s)
    return SignalEvidence(
        kind=ViolationKind.LATENCY,
        delta=_expm1(centre / index),
        low=_expm1(low / index),
        high=_expm1(high / index),
        threshold=slo.max_latency_delta,
        samples=float(max(k_c, n_c * share_s)),
        min_samples=slo.min_tail_requests,
        severe_threshold=slo.severe_factor * slo.max_latency_delta,
        method="exceedance",
        basis=f"{k_c:.1f} of {n_c:.0f} canary requests above {bound * 1000:g} ms, stable {share_s:.2%}",
    )


def _chi2_quantile(dof: float, z: float) -> float:
    """The chi-square quantile at standard-normal quantile ``z`` (Wilson & Hilferty, 1931)."""
    if dof <= 0:
        return 0.0
    c = 2.0 / (9.0 * dof)
    return dof * max(0.0, 1.0 - c + z * math.sqrt(c)) ** 3


def poisson_bounds(count: float, z: float) -> tuple[float, float]:
    """One-sided confidence bounds, ``z`` standard errors each way, for the mean of a Poisson
    count observed as ``count`` (Garwood's exact interval via chi-square quantiles).

    >>> [round(b, 2) for b in poisson_bounds(3, 2.0)]
    [0.58, 8.9]
    """
    return _chi2_quantile(2.0 * count, -z) / 2.0, _chi2_quantile(2.0 * count + 2.0, z) / 2.0


def _log_offsets(tail_count: float, z: float, index: float) -> tuple[float, float]:
    """How far (in log latency) the true quantile may lie below and above the sample's."""
    low, high = poisson_bounds(tail_count, z)
    down = math.inf if low <= 0 else math.log(tail_count / low) / index
    up = math.log(high / tail_count) / index
    return down, up


def _expm1(x: float) -> float:
    return -1.0 if x == -math.inf else (math.inf if x > 700 else math.expm1(x))


def error_evidence(
    stable: VersionStats, canary: VersionStats, *, slo: SLOPolicy = _SLO
) -> SignalEvidence | None:
    """The absolute error-rate delta with a two-proportion (Agresti-Caffo) interval.

    >>> s = VersionStats("v1", 0.2, 0.01, 20_000)
    >>> error_evidence(s, VersionStats("v2", 0.2, 0.04, 100)).beyond_noise   # 4 errors in 100
    False
    >>> error_evidence(s, VersionStats("v2", 0.2, 0.5, 100)).conclusive_violation
    True
    """
    n_s, n_c = _count(stable), _count(canary)
    e_s, e_c = stable.error_rate, canary.error_rate
    if n_s is None or n_c is None or e_s is None or e_c is None:
        return None
    if not (math.isfinite(e_s) and math.isfinite(e_c)):
        return None
    # One error and one success added to each version (Agresti & Caffo, 2000).
    ps = (e_s * n_s + 1.0) / (n_s + 2.0)
    pc = (e_c * n_c + 1.0) / (n_c + 2.0)
    se = math.sqrt(ps * (1 - ps) / (n_s + 2.0) + pc * (1 - pc) / (n_c + 2.0))
    centre = pc - ps
    margin = slo.confidence_z * se
    return SignalEvidence(
        kind=ViolationKind.ERRORS,
        delta=e_c - e_s,
        low=centre - margin,
        high=centre + margin,
        threshold=slo.max_error_delta,
        samples=n_c,
        severe_threshold=slo.severe_factor * slo.max_error_delta,
    )


def weigh(decision: Decision, *, quantile: float = 0.99, slo: SLOPolicy = _SLO) -> Evidence:
    """Both signals' evidence for one decision (each ``None`` without data)."""
    stable, canary = decision.stable, decision.canary
    errors = error_evidence(stable, canary, slo=slo)
    if slo.latency_evidence == "hybrid":
        # Violations on the order statistic, which a short stall moves little; early passes
        # on the sharper exceedance count, which a stall can only make harder to reach.
        order = quantile_evidence(stable, canary, quantile=quantile, slo=slo)
        sharp = exceedance_evidence(stable, canary, quantile=quantile, slo=slo)
        return Evidence(latency=order, errors=errors, latency_pass=sharp)
    return Evidence(latency=latency_evidence(stable, canary, quantile=quantile, slo=slo), errors=errors)
