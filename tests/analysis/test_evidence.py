"""The confidence intervals behind the breaker: right size for the sample, checked by simulation."""

from __future__ import annotations

import numpy as np
import pytest

from canarypilot.analysis import error_evidence, latency_evidence, weigh
from canarypilot.model import Decision, Status, VersionStats
from canarypilot.policy import SLOPolicy

RNG_SEED = 20261126
SIGMA = 0.5  # log-normal spread: p99 = 3.2 x median, as the simulator's services


def _p99_pairs(rng: np.random.Generator, n_stable: int, n_canary: int, slower: float, trials: int):
    """Exact sample p99s of two log-normal versions, ``trials`` times."""
    stable = rng.lognormal(np.log(0.05), SIGMA, size=(trials, n_stable))
    canary = rng.lognormal(np.log(0.05 * slower), SIGMA, size=(trials, n_canary))
    return np.quantile(stable, 0.99, axis=1), np.quantile(canary, 0.99, axis=1)


def _latency(p_s: float, p_c: float, n_s: int, n_c: int, slo: SLOPolicy | None = None):
    evidence = latency_evidence(
        VersionStats("v1", p_s, 0.0, n_s), VersionStats("v2", p_c, 0.0, n_c), slo=slo or SLOPolicy()
    )
    assert evidence is not None
    return evidence


def test_identical_versions_are_rarely_beyond_the_noise_of_450_requests() -> None:
    rng = np.random.default_rng(RNG_SEED)
    stable, canary = _p99_pairs(rng, 9000, 450, 1.0, 1000)
    readings = [_latency(s, c, 9000, 450) for s, c in zip(stable, canary, strict=True)]
    # the raw point estimate crosses +15 % often: that is what rolled healthy canaries back
    assert sum(r.delta > 0.15 for r in readings) / len(readings) > 0.03
    # beyond the noise (one-sided z = 2, nominal 2.3 %) far less often
    assert sum(r.beyond_noise for r in readings) / len(readings) <= 0.03
    assert not any(r.conclusive_violation for r in readings)


def test_a_canary_twice_as_slow_is_conclusive_from_450_requests() -> None:
    rng = np.random.default_rng(RNG_SEED + 1)
    stable, canary = _p99_pairs(rng, 9000, 450, 2.0, 300)
    readings = [_latency(s, c, 9000, 450) for s, c in zip(stable, canary, strict=True)]
    assert sum(r.conclusive_violation for r in readings) / len(readings) >= 0.95


def test_the_interval_narrows_with_the_sample() -> None:
    small, large = _latency(0.2, 0.25, 20_000, 450), _latency(0.2, 0.25, 20_000, 20_000)
    assert small.delta == pytest.approx(large.delta) == pytest.approx(0.25)
    assert small.high - small.low > 3 * (large.high - large.low)
    assert not small.beyond_noise and large.conclusive_violation


def test_a_conclusive_pass_needs_the_tail_requests() -> None:
    # 200 requests hold 2 beyond the p99: fewer than min_tail_requests, never conclusive
    assert not _latency(0.2, 0.2, 20_000, 200, SLOPolicy(confidence_z=0)).conclusive_pass
    assert _latency(0.2, 0.2, 20_000, 300, SLOPolicy(confidence_z=0)).conclusive_pass


def _error_readings(seed: int, trials: int, stable: tuple[int, float], canary: tuple[int, float]):
    """``trials`` error intervals for binomial errors: (requests, error rate) per version."""
    rng = np.random.default_rng(seed)
    (n_s, p_s), (n_c, p_c) = stable, canary
    readings = [
        error_evidence(VersionStats("v1", 0.2, s / n_s, n_s), VersionStats("v2", 0.2, c / n_c, n_c))
        for s, c in zip(rng.binomial(n_s, p_s, trials), rng.binomial(n_c, p_c, trials), strict=True)
    ]
    assert all(r is not None for r in readings)
    return [r for r in readings if r]


def test_error_intervals_cover_like_binomials_should() -> None:
    trials = 4000
    readings = _error_readings(RNG_SEED + 2, trials, (20_000, 0.01), (200, 0.01))
    assert sum(r.beyond_noise for r in readings) / trials <= 0.03


def test_half_the_requests_failing_is_conclusive_at_once() -> None:
    e = error_evidence(VersionStats("v1", 0.2, 0.001, 20_000), VersionStats("v2", 0.2, 0.5, 100))
    assert e is not None and e.conclusive_violation and e.low > 0.3


def test_two_points_at_a_two_point_threshold_cannot_be_decided() -> None:
    # The suite's error-regression-2pts family: canary 2.1 %, stable 0.1 %, threshold "> 2 points".
    trials = 4000
    readings = _error_readings(RNG_SEED + 3, trials, (60_000, 0.001), (3000, 0.021))
    above = sum(r.delta > 0.02 for r in readings) / trials
    conclusive = sum(r.conclusive_violation for r in readings) / trials
    assert 0.35 < above < 0.65  # the point estimate is a coin toss ...
    assert conclusive < 0.05  # ... and no test at 97.7 % can call it a violation
    assert all(r.beyond_noise for r in readings if r)  # though it is clearly worse than stable


def test_missing_numbers_give_no_evidence() -> None:
    stable = VersionStats("v1", 0.2, 0.001, 1000)
    assert latency_evidence(stable, VersionStats("v2", None, 0.0, 1000)) is None
    assert latency_evidence(stable, VersionStats("v2", 0.2, 0.0, 0)) is None
    assert error_evidence(stable, VersionStats("v2", 0.2, float("nan"), 1000)) is None
    decision = Decision(Status.HOLD, None, None, None, VersionStats("v2"), stable, ())
    evidence = weigh(decision)
    assert evidence.latency is None and evidence.errors is None and not evidence.conclusive_pass
