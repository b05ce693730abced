"""The judge: one snapshot in, one decision out.

It never says ``proceed`` without data. Missing series, NaN or infinite values,
a stable p99 of zero, too few canary requests or stale samples all give
``hold`` with the reason spelled out; an SLO breach gives ``rollback``; anything
else gives ``proceed`` with the safe weight.
"""

from __future__ import annotations

import math

from canarypilot.analysis.interpolate import safe_weight
from canarypilot.model import Decision, Snapshot, Status, Violation, ViolationKind
from canarypilot.policy import InterpolationPolicy, SLOPolicy

_SLO = SLOPolicy()
_INTERPOLATION = InterpolationPolicy()


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _missing(name: str, value: float | None) -> str | None:
    if value is None:
        return f"{name}: no series (no data is not zero)"
    if math.isnan(value):
        return f"{name} is NaN"
    if math.isinf(value):
        return f"{name} is infinite"
    return None


def hold_reasons(snapshot: Snapshot, slo: SLOPolicy = _SLO) -> list[str]:
    """Why this snapshot cannot be judged yet; empty when it can."""
    reasons: list[str] = []
    stable, canary = snapshot.stable, snapshot.canary
    for who, stats in (("stable", stable), ("canary", canary)):
        for field, value in (
            ("requests", stats.requests),
            ("p99", stats.p99_seconds),
            ("error rate", stats.error_rate),
        ):
            problem = _missing(f"{who} {field} ({stats.version})", value)
            if problem:
                reasons.append(problem)
    if _finite(stable.p99_seconds) and stable.p99_seconds == 0:
        reasons.append("stable p99 is 0: the latency delta is undefined")
    if _finite(canary.requests) and canary.requests is not None and canary.requests < slo.min_canary_requests:
        reasons.append(
            f"canary served {canary.requests:.0f} requests in the window, fewer than "
            f"{slo.min_canary_requests:.0f}: its p99 would be noise"
        )
    if _finite(stable.requests) and stable.requests is not None and stable.requests < slo.min_stable_requests:
        reasons.append(f"stable served {stable.requests:.0f} requests in the window")
    age = snapshot.age_seconds
    if age is not None and age > slo.max_sample_age_seconds:
        reasons.append(
            f"newest sample is {age:.0f}s old (limit {slo.max_sample_age_seconds:.0f}s): series are stale"
        )
    return reasons


def judge(
    snapshot: Snapshot,
    *,
    slo: SLOPolicy = _SLO,
    interpolation: InterpolationPolicy = _INTERPOLATION,
) -> Decision:
    """Decide from one snapshot.

    >>> from canarypilot.model import Snapshot, Target, VersionStats
    >>> snap = Snapshot(Target("api"), VersionStats("v1-stable", 0.200, 0.001, 5000),
    ...                 VersionStats("v2-canary", 0.210, 0.001, 400), at=0, window_seconds=300)
    >>> d = judge(snap); d.status.value, d.weight
    ('proceed', 62.6)
    """
    stable, canary = snapshot.stable, snapshot.canary
    latency_delta = error_delta = weight = None
    if _finite(stable.p99_seconds) and _finite(canary.p99_seconds) and stable.p99_seconds:
        assert stable.p99_seconds is not None and canary.p99_seconds is not None
        latency_delta = (canary.p99_seconds - stable.p99_seconds) / stable.p99_seconds
    if _finite(stable.error_rate) and _finite(canary.error_rate):
        assert stable.error_rate is not None and canary.error_rate is not None
        error_delta = canary.error_rate - stable.error_rate
    if latency_delta is not None and error_delta is not None:
        weight = safe_weight(latency_delta, error_delta, interpolation)

    def decide(
        status: Status,
        reasons: list[str],
        violations: tuple[Violation, ...] = (),
        chosen: float | None = None,
    ) -> Decision:
        return Decision(
            status=status,
            weight=chosen,
            latency_delta=latency_delta,
            error_delta=error_delta,
            canary=canary,
            stable=stable,
            reasons=tuple(reasons),
            safe_weight=weight,
            violations=violations,
            target=snapshot.target,
            at=snapshot.at,
        )

    waiting = hold_reasons(snapshot, slo)
    if waiting:
        return decide(Status.HOLD, waiting)
    assert latency_delta is not None and error_delta is not None and weight is not None

    violations: list[Violation] = []
    reasons: list[str] = []
    if latency_delta > slo.max_latency_delta:
        severe = latency_delta > slo.severe_factor * slo.max_latency_delta
        violations.append(Violation(ViolationKind.LATENCY, latency_delta, slo.max_latency_delta, severe))
        reasons.append(
            f"p99 latency delta {latency_delta:+.1%} exceeds {slo.max_latency_delta:.1%} "
            f"(canary {canary.p99_seconds * 1000:.1f} ms vs stable {stable.p99_seconds * 1000:.1f} ms)"  # type: ignore[operator]
        )
    if error_delta > slo.max_error_delta:
        severe = error_delta > slo.severe_factor * slo.max_error_delta
        violations.append(Violation(ViolationKind.ERRORS, error_delta, slo.max_error_delta, severe))
        reasons.append(
            f"error rate delta {error_delta * 100:+.2f} points exceeds {slo.max_error_delta * 100:.2f} "
            f"(canary {canary.error_rate:.2%} vs stable {stable.error_rate:.2%})"
        )
    if violations:
        return decide(Status.ROLLBACK, reasons, tuple(violations), 0.0)
    reasons.append(
        f"p99 delta {latency_delta:+.1%} (limit {slo.max_latency_delta:.0%}), error delta "
        f"{error_delta * 100:+.2f} points (limit {slo.max_error_delta * 100:.2f}): safe weight {weight:g}%"
    )
    return decide(Status.PROCEED, reasons, chosen=weight)
