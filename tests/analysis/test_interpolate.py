"""The safe-weight formula, checked against values computed independently here."""

from __future__ import annotations

import math

import pytest

from canarypilot.analysis.interpolate import round_half_away, safe_weight, safety_factor
from canarypilot.policy import InterpolationPolicy


def reference(ld: float, ed: float, lo: float = 5.0, hi: float = 100.0) -> float:
    """The article's Go formula, transcribed independently, plus the clamp."""
    try:
        penalty = math.exp(-ld * 10)
    except OverflowError:
        return hi
    safety = max(0.1, penalty * max(0.2, 1.0 - ed * 20.0))
    raw = lo + safety * (hi - lo)
    scaled = raw * 10
    rounded = math.floor(scaled + 0.5) if scaled >= 0 else -math.floor(-scaled + 0.5)
    return min(hi, max(lo, rounded / 10))


@pytest.mark.parametrize(
    ("latency_delta", "error_delta", "expected"),
    [
        (0.0, 0.0, 100.0),  # identical versions: full weight
        (0.05, 0.0, 62.6),  # 5 + exp(-0.5) * 95 = 62.62
        (0.10, 0.0, 39.9),  # 5 + exp(-1) * 95 = 39.95 -> 39.9 (not a tie: 39.9486)
        (0.15, 0.0, 26.2),  # at the SLO threshold
        (0.0, 0.01, 81.0),  # 5 + 0.8 * 95 = 81
        (0.0, 0.04, 24.0),  # error factor floors at 0.2: 5 + 0.2 * 95
        (0.0, 0.5, 24.0),
        (1.0, 0.0, 14.5),  # safety floor 0.1: 5 + 9.5
        (50.0, 0.9, 14.5),  # huge deltas: still the floor, no overflow
        (-0.2, 0.0, 100.0),  # faster canary: clamped, the article gave 662.9
        (-1.0, 0.0, 100.0),  # no canary latency at all (p99 0): the article's huge weight
        (-1e6, 0.0, 100.0),  # exp overflow handled
        (0.0, -0.5, 100.0),  # canary has fewer errors than stable
    ],
)
def test_table(latency_delta: float, error_delta: float, expected: float) -> None:
    assert safe_weight(latency_delta, error_delta) == expected
    assert reference(latency_delta, error_delta) == pytest.approx(expected)


def test_matches_reference_on_a_grid() -> None:
    for i in range(-50, 200):
        for j in range(-10, 60):
            ld, ed = i / 200, j / 1000
            assert safe_weight(ld, ed) == pytest.approx(reference(ld, ed)), (ld, ed)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0.05, 0.1), (0.25, 0.3), (-0.25, -0.3), (52.25, 52.3), (1.15, 1.2), (2.5, 2.5), (0.0, 0.0)],
)
def test_rounding_is_half_away_from_zero(value: float, expected: float) -> None:
    # 1.15 * 10 is exactly 11.5 in float64, so Go's math.Round(x*10)/10 gives 1.2 as well.
    assert round_half_away(value) == expected


def test_python_round_would_differ() -> None:
    # Python rounds 0.25 -> 0.2 (half to even); Go and canarypilot give 0.3.
    assert round(0.25, 1) == 0.2
    assert round_half_away(0.25) == 0.3


def test_weight_never_leaves_the_policy_bounds() -> None:
    policy = InterpolationPolicy(min_weight=10, max_weight=50)
    for ld in (-5.0, -0.5, 0.0, 0.05, 0.5, 5.0):
        for ed in (-0.5, 0.0, 0.01, 0.5):
            assert 10 <= safe_weight(ld, ed, policy) <= 50


def test_constants_are_policy_settings() -> None:
    gentle = InterpolationPolicy(latency_decay=5)
    assert safe_weight(0.1, 0.0, gentle) == pytest.approx(62.6)  # exp(-0.5) as for 0.05 at k=10


def test_nan_is_refused() -> None:
    with pytest.raises(ValueError):
        safe_weight(math.nan, 0.0)


def test_safety_factor_floors() -> None:
    assert safety_factor(10.0, 0.0) == 0.1
    assert safety_factor(0.0, 1.0) == pytest.approx(0.2)
