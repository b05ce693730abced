"""Latency evidence from the histograms: counting canary requests beyond stable's tail.

Checked by simulation against the order-statistic interval on the same data: as
rarely beyond the noise for identical versions, far more often for a canary that
really is slower, and never a rollback on one window alone.
"""

from __future__ import annotations

import math

import numpy as np

from canarypilot.analysis import BreakerState, assess, judge, weigh
from canarypilot.analysis.evidence import exceedance_evidence, latency_evidence, tail_edge
from canarypilot.model import Action, Snapshot, Target, VersionStats
from canarypilot.policy import SLOPolicy

RNG_SEED = 20261127
EXCEEDANCE = SLOPolicy(latency_evidence="exceedance")  # type: ignore[call-arg]
SIGMA = 0.5  # log-normal spread: p99 = 3.2 x median, as the simulator's services
#: The simulator's bucket bounds (seconds), around a 160 ms stable p99.
EDGES = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, math.inf)


def stats(version: str, latencies: np.ndarray) -> VersionStats:
    """What a client library's histogram and Prometheus' quantile say about these requests."""
    counts = tuple((edge, float(np.count_nonzero(latencies <= edge))) for edge in EDGES)
    return VersionStats(
        version, float(np.quantile(latencies, 0.99)), 0.0, float(latencies.size), latency_buckets=counts
    )


def pairs(rng: np.random.Generator, n_canary: int, slower: float, trials: int, n_stable: int = 9000):
    median = 0.16 / math.exp(2.326 * SIGMA)  # stable p99 at 160 ms
    for _ in range(trials):
        stable = rng.lognormal(math.log(median), SIGMA, n_stable)
        canary = rng.lognormal(math.log(median * slower), SIGMA, n_canary)
        yield stats("v1-stable", stable), stats("v2-canary", canary)


def both_methods(stable: VersionStats, canary: VersionStats):
    exceed = latency_evidence(stable, canary)
    plain = VersionStats(canary.version, canary.p99_seconds, 0.0, canary.requests)
    order = latency_evidence(VersionStats(stable.version, stable.p99_seconds, 0.0, stable.requests), plain)
    assert exceed is not None and order is not None
    assert (exceed.method, order.method) == ("exceedance", "order-statistic")
    return exceed, order


def test_identical_versions_are_as_rarely_beyond_the_noise() -> None:
    rng = np.random.default_rng(RNG_SEED)
    readings = [both_methods(s, c) for s, c in pairs(rng, 450, 1.0, 1000)]
    # one-sided z = 2 (nominal 2.3 %): the count is exact, so it holds like the order statistic
    assert sum(e.beyond_noise for e, _ in readings) / len(readings) <= 0.03
    assert not any(e.conclusive_violation for e, _ in readings)


def test_a_canary_half_as_slow_again_is_seen_in_300_requests() -> None:
    # 5 % of 200 requests/s for 30 s: the order statistic rests on 3 requests beyond the p99;
    # a 1.5x slower canary puts ~10x stable's share beyond stable's p99 bucket
    rng = np.random.default_rng(RNG_SEED + 1)
    readings = [both_methods(s, c) for s, c in pairs(rng, 300, 1.5, 300)]
    exceed = sum(e.beyond_noise for e, _ in readings) / len(readings)
    order = sum(o.beyond_noise for _, o in readings) / len(readings)
    assert exceed >= 0.95
    assert exceed >= order + 0.3, (exceed, order)


def test_a_canary_within_the_slo_passes_conclusively_sooner() -> None:
    # identical versions, 2,000 canary requests: the upper bound is below +15 % far more often
    rng = np.random.default_rng(RNG_SEED + 2)
    readings = [both_methods(s, c) for s, c in pairs(rng, 2000, 1.0, 200)]
    exceed = sum(e.conclusive_pass for e, _ in readings) / len(readings)
    order = sum(o.conclusive_pass for _, o in readings) / len(readings)
    assert exceed > order


def test_the_bound_nearest_stable_p99_is_chosen() -> None:
    stable = ((0.1, 9000.0), (0.2, 9900.0), (0.4, 9990.0), (math.inf, 10_000.0))
    canary = ((0.1, 250.0), (0.2, 280.0), (0.4, 299.0), (math.inf, 300.0))
    # 1 % of stable lies above 0.2 s: exactly the p99's share
    assert tail_edge(stable, canary, 0.01) == (0.2, 100.0, 10_000.0, 20.0, 300.0)
    # a bound the canary's histogram lacks is skipped
    assert tail_edge(stable, canary[:1] + canary[2:], 0.01) == (0.4, 10.0, 10_000.0, 1.0, 300.0)
    # nothing of stable above any finite bound: no edge
    assert tail_edge(((0.1, 10.0), (math.inf, 10.0)), canary, 0.01) is None
    # no +Inf bucket, no total: not a histogram to count in
    assert tail_edge(stable[:-1], canary, 0.01) is None and tail_edge((), canary, 0.01) is None


def test_no_slow_canary_request_still_bounds_the_delta() -> None:
    stable_buckets = ((0.1, 9000.0), (0.2, 9900.0), (math.inf, 10_000.0))
    stable = VersionStats("v1", 0.2, 0.0, 10_000, latency_buckets=stable_buckets)
    canary_buckets = ((0.1, 2700.0), (0.2, 3000.0), (math.inf, 3000.0))
    canary = VersionStats("v2", 0.1, 0.0, 3000, latency_buckets=canary_buckets)
    e = exceedance_evidence(stable, canary)
    assert e is not None and e.low == -1.0 and e.delta == -1.0
    assert math.isfinite(e.high) and e.conclusive_pass


def test_without_histograms_the_order_statistic_is_used() -> None:
    s, c = VersionStats("v1", 0.2, 0.0, 10_000), VersionStats("v2", 0.25, 0.0, 450)
    evidence = latency_evidence(s, c)
    assert evidence is not None and evidence.method == "order-statistic"
    # and the setting can ask for it even when histograms are there
    rng = np.random.default_rng(RNG_SEED + 3)
    stable, canary = next(pairs(rng, 450, 1.0, 1))
    forced = latency_evidence(stable, canary, slo=SLOPolicy(latency_evidence="quantile"))  # type: ignore[call-arg]
    assert forced is not None and forced.method == "order-statistic"


def test_one_window_of_slow_requests_is_never_a_rollback_by_itself() -> None:
    # 1.2x and 1.6x slower from 2,000 canary requests: conclusive (severe, the second), with
    # hundreds of slow requests, but a ten-second stall inside the window reads the same;
    # the second window decides
    for slower, severe in ((1.2, False), (1.6, True)):
        rng = np.random.default_rng(RNG_SEED + 4)
        stable, canary = next(pairs(rng, 2000, slower, 1))
        decision = judge(Snapshot(Target("api"), stable, canary, at=100, window_seconds=60))
        evidence = weigh(decision, slo=EXCEEDANCE)
        assert evidence.latency is not None and evidence.latency.method == "exceedance"
        assert evidence.latency.conclusive_violation and evidence.latency.conclusive_severe is severe
        verdict, state = assess(
            decision, BreakerState(), now=100, last_weight_change=0, evidence=evidence, window_start=40
        )
        assert verdict.action is Action.HOLD and state.consecutive == 1
        verdict, _ = assess(
            decision, state, now=160, last_weight_change=0, evidence=evidence, window_start=100
        )
        assert verdict.action is Action.ROLLBACK


def test_without_histograms_a_severe_reading_still_rolls_back_at_once() -> None:
    rng = np.random.default_rng(RNG_SEED + 5)
    stable, canary = next(pairs(rng, 20_000, 2.0, 1, n_stable=40_000))
    bare = [VersionStats(s.version, s.p99_seconds, 0.0, s.requests) for s in (stable, canary)]
    decision = judge(Snapshot(Target("api"), *bare, at=100, window_seconds=60))
    evidence = weigh(decision)
    assert evidence.latency is not None and evidence.latency.method == "order-statistic"
    verdict, _ = assess(
        decision, BreakerState(), now=100, last_weight_change=0, evidence=evidence, window_start=40
    )
    assert verdict.action is Action.ROLLBACK


def test_hybrid_judges_violations_on_the_p99_and_passes_on_the_count() -> None:
    # the default: a canary within the SLO passes sooner on the sharper count, while a
    # violation still rests on the order statistic, which a short stall moves little
    rng = np.random.default_rng(RNG_SEED + 6)
    stable, canary = next(pairs(rng, 2000, 1.0, 1))
    decision = judge(Snapshot(Target("api"), stable, canary, at=100, window_seconds=60))
    evidence = weigh(decision)
    assert evidence.latency is not None and evidence.latency.method == "order-statistic"
    assert evidence.latency_pass is not None and evidence.latency_pass.method == "exceedance"
    assert evidence.to_dict()["latency_pass"]["method"] == "exceedance"
    passes = sum(
        weigh(judge(Snapshot(Target("api"), s, c, at=100, window_seconds=60))).conclusive_pass
        for s, c in pairs(np.random.default_rng(RNG_SEED + 7), 2000, 1.0, 100)
    )
    quantile = SLOPolicy(latency_evidence="quantile")  # type: ignore[call-arg]
    plain = sum(
        weigh(judge(Snapshot(Target("api"), s, c, at=100, window_seconds=60)), slo=quantile).conclusive_pass
        for s, c in pairs(np.random.default_rng(RNG_SEED + 7), 2000, 1.0, 100)
    )
    assert passes > plain, (passes, plain)
