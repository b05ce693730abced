"""Judge paths: proceed, hold for every kind of missing data, rollback at the thresholds."""

from __future__ import annotations

import math

import pytest

from canarypilot.analysis import judge
from canarypilot.model import Snapshot, Status, Target, VersionStats, ViolationKind
from canarypilot.policy import SLOPolicy

TARGET = Target("payment-api")


def snap(
    stable: tuple[float | None, float | None, float | None] = (0.200, 0.001, 10_000),
    canary: tuple[float | None, float | None, float | None] = (0.200, 0.001, 1_000),
    age: float | None = None,
) -> Snapshot:
    return Snapshot(
        TARGET,
        VersionStats("v1-stable", *stable),
        VersionStats("v2-canary", *canary),
        at=1000.0,
        window_seconds=300,
        age_seconds=age,
    )


def test_healthy_canary_proceeds_at_full_weight() -> None:
    d = judge(snap())
    assert d.status is Status.PROCEED
    assert d.weight == 100.0
    assert d.latency_delta == 0.0 and d.error_delta == 0.0
    assert d.reasons and "safe weight 100%" in d.reasons[0]


def test_slightly_slower_canary_gets_the_interpolated_weight() -> None:
    d = judge(snap(canary=(0.210, 0.001, 1_000)))
    assert d.status is Status.PROCEED
    assert d.latency_delta == pytest.approx(0.05)
    assert d.weight == 62.6


def test_faster_canary_is_capped_at_max_weight() -> None:
    d = judge(snap(canary=(0.100, 0.0, 1_000)))
    assert d.status is Status.PROCEED and d.weight == 100.0


def test_latency_threshold_is_strictly_greater() -> None:
    at_limit = judge(snap(stable=(0.2, 0.0, 10_000), canary=(0.23, 0.0, 1_000)))
    assert at_limit.latency_delta == pytest.approx(0.15)
    # 0.23/0.2 - 1 is 0.15000000000000013 in floats: just above, so a rollback.
    # Use exact binary fractions to test "equal is allowed".
    exact = judge(
        snap(stable=(0.5, 0.0, 10_000), canary=(0.5 * 1.125, 0.0, 1_000)),
        slo=SLOPolicy(max_latency_delta=0.125),
    )
    assert exact.latency_delta == 0.125
    assert exact.status is Status.PROCEED


def test_latency_regression_rolls_back_with_weight_zero() -> None:
    d = judge(snap(canary=(0.260, 0.001, 1_000)))
    assert d.status is Status.ROLLBACK
    assert d.weight == 0.0
    assert [v.kind for v in d.violations] == [ViolationKind.LATENCY]
    assert not d.violations[0].severe  # 30% is exactly 2x: not more than twice
    assert "p99 latency delta +30.0%" in d.reasons[0]


def test_error_regression_rolls_back_and_severity_is_flagged() -> None:
    d = judge(snap(canary=(0.2, 0.051, 1_000)))
    assert d.status is Status.ROLLBACK
    assert d.violations[0].kind is ViolationKind.ERRORS
    assert d.violations[0].severe  # 5 points > 2 x 2 points


def test_error_at_threshold_proceeds() -> None:
    d = judge(
        snap(stable=(0.2, 0.0, 10_000), canary=(0.2, 0.015625, 1_000)),
        slo=SLOPolicy(max_error_delta=0.015625),
    )
    assert d.status is Status.PROCEED


@pytest.mark.parametrize(
    ("stable", "canary", "needle"),
    [
        ((0.2, 0.0, 10_000), (None, None, None), "canary requests"),
        ((None, None, None), (0.2, 0.0, 1_000), "stable requests"),
        ((0.2, 0.0, 10_000), (math.nan, 0.0, 1_000), "canary p99 (v2-canary) is NaN"),
        ((math.inf, 0.0, 10_000), (0.2, 0.0, 1_000), "stable p99 (v1-stable) is infinite"),
        ((0.0, 0.0, 10_000), (0.2, 0.0, 1_000), "stable p99 is 0"),
        ((0.2, 0.0, 10_000), (0.2, 0.0, 40), "canary served 40 requests"),
        ((0.2, 0.0, 10_000), (0.2, math.nan, 0), "canary served 0 requests"),
    ],
)
def test_missing_or_thin_data_holds(
    stable: tuple[float | None, float | None, float | None],
    canary: tuple[float | None, float | None, float | None],
    needle: str,
) -> None:
    d = judge(snap(stable=stable, canary=canary))
    assert d.status is Status.HOLD
    assert d.weight is None
    assert any(needle in r for r in d.reasons), d.reasons


def test_no_canary_data_never_proceeds_even_if_latency_looks_great() -> None:
    # The article's bug: canary p99 0 / missing gives latency_delta = -1 and a huge weight.
    d = judge(snap(canary=(0.0, 0.0, 0)))
    assert d.status is Status.HOLD


def test_thin_canary_traffic_threshold_is_configurable() -> None:
    d = judge(snap(canary=(0.2, 0.0, 40)), slo=SLOPolicy(min_canary_requests=20))
    assert d.status is Status.PROCEED


def test_stale_series_hold() -> None:
    d = judge(snap(age=600))
    assert d.status is Status.HOLD
    assert any("stale" in r for r in d.reasons)


def test_decision_serialises_to_the_documented_json() -> None:
    d = judge(snap(canary=(math.nan, 0.0, 1_000)))
    out = d.to_dict()
    assert out["status"] == "hold" and out["weight"] is None
    assert out["canary"]["p99_seconds"] is None  # NaN is not valid JSON
    assert set(out) >= {"status", "weight", "latency_delta", "error_delta", "canary", "stable", "reasons"}
    assert set(out["canary"]) >= {"p99_seconds", "error_rate", "requests"}
