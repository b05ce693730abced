"""The engine: the product rolls back a bad canary quickly and promotes a good one,
runs replay exactly per seed, and the metrics really lag and really are histograms."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from canarypilot.metrics import promql
from canarypilot.sim.bench import builtin_suite
from canarypilot.sim.engine import EPOCH, SimClock, SimMetrics, Simulation, default_settings, simulate
from canarypilot.sim.scenario import Scenario, parse_scenario
from canarypilot.sim.timeline import MarkKind, Outcome
from canarypilot.sim.world import World

SUITE = {s.name: s for s in builtin_suite()}


def scenario(**extra: Any) -> Scenario:
    data = {
        "name": "t",
        "traffic": {"rps": 200},
        "stable": {"latency": {"median_ms": 50, "p99_ms": 160}, "error_rate": 0.001},
        "slo": {"latency_ms": 250},
        "monitoring": {"buckets_ms": [10, 25, 50, 75, 100, 150, 200, 250, 300, 400, 500, 1000, 5000]},
        **extra,
    }
    return parse_scenario(data)


# Bounds a user can hold the product to, whatever the engine's rules: a +100 % latency
# regression or +5 points of errors at 5 % is rolled back in its first two minutes and a
# +50 % one within four (the oracle, Wald's SPRT on the true parameters, needs ~30 s).
@pytest.mark.parametrize(
    ("name", "bound"),
    [("latency-regression-100", 120.0), ("error-regression-5pts", 120.0), ("latency-regression-50", 240.0)],
)
@pytest.mark.xfail(
    strict=True,
    reason="issue 10 miss, engine v2: a rollback needs ceil(max_transient/slice)+2 slices of 30 s plus "
    "about a minute of warm-up allowance, so +100 % p99 is detected in ~174 s, not 120 s",
)
def test_canarypilot_rolls_back_a_bad_canary_in_bounded_time(name: str, bound: float) -> None:
    for seed in range(4):
        run = simulate(SUITE[name], "canarypilot", seed)
        assert run.outcome is Outcome.ROLLED_BACK, (name, seed, run.marks)
        assert run.time_to_detect is not None and run.time_to_detect <= bound
        # The router confirmed 0 % one routing delay after the decision.
        assert run.time_to_restore == pytest.approx(SUITE[name].routing_delay_seconds)
        # Never sooner than the floor: the scrape and its lag come first.
        assert run.time_to_detect >= simulate(SUITE[name], "oracle", seed).time_to_detect - 15


def test_canarypilot_promotes_a_faster_canary() -> None:
    for seed in range(3):
        run = simulate(SUITE["healthy-faster"], "canarypilot", seed)
        assert run.outcome is Outcome.PROMOTED, run.marks
        assert run.promoted_at is not None and run.rollback_at is None
        weights = [m.weight for m in run.marks if m.kind is MarkKind.WEIGHT]
        assert weights[0] == 5.0 and weights[-1] == 100.0
        assert weights == sorted(weights)


def test_same_seed_same_run_other_seed_other_run() -> None:
    s = SUITE["healthy-noisy-low-traffic"]
    first = simulate(s, "canarypilot", 7).to_dict(with_marks=True)
    again = simulate(s, "canarypilot", 7).to_dict(with_marks=True)
    other = simulate(s, "canarypilot", 8).to_dict(with_marks=True)
    assert first == again
    assert first["timeline"] != other["timeline"]


def test_competitors_behave_as_their_tools_do() -> None:
    # Flagger's absolute p99 bound (the 250 ms SLO) cannot see a 25% slowdown of a 160 ms p99.
    missed = simulate(SUITE["latency-regression-25"], "flagger", 0)
    assert missed.outcome is Outcome.PROMOTED
    assert (
        missed.bad_requests > 0
        and missed.simulated_seconds == SUITE["latency-regression-25"].duration_seconds
    )
    # Five failed checks, then a rollback on the next interval.
    caught = simulate(SUITE["error-regression-5pts"], "flagger", 0)
    assert caught.outcome is Outcome.ROLLED_BACK and caught.rollback_at == pytest.approx(361.0)
    # The static ladder is 10-25-50-100 with 60/90/120 s pauses (plus the router's delays).
    ladder = simulate(SUITE["healthy-faster"], "static", 0)
    assert [m.weight for m in ladder.marks if m.kind is MarkKind.WEIGHT] == [10, 25, 50, 100]
    assert ladder.promoted_at == pytest.approx(274.0)


def test_a_promoted_bad_canary_keeps_counting_bad_requests() -> None:
    s = SUITE["latency-regression-50"]
    run = simulate(s, "flagger", 1)
    assert run.outcome is Outcome.PROMOTED
    assert run.onset == pytest.approx(1.0)
    assert run.bad_requests > 1000  # 30 minutes of a slow version, most of it at 100 %


def test_scrape_lag_delays_what_queries_see() -> None:
    s = scenario(monitoring={"scrape_interval_seconds": 10, "scrape_lag_seconds": 30})
    settings = default_settings(s)
    sim = Simulation(s, 0, settings)
    sim.weight = 50.0
    clock, metrics = SimClock(sim), SimMetrics(sim)

    async def look() -> Any:
        await clock.sleep(100)
        return await metrics.snapshot(sim.target, window_seconds=60)

    snap = asyncio.run(look())
    assert snap.age_seconds == pytest.approx(30.0)  # the newest visible scrape is 30 s old
    # Of the 60 s window only the scrapes at 40..70 s are visible: increase() covers their
    # 30 s plus half a scrape interval of extrapolation at the lagging end, 35 s in all,
    # of a canary taking 50 % of 200 rps.
    assert snap.canary.requests == pytest.approx(100 * 35, rel=0.1)


def test_histogram_counts_are_consistent_and_follow_the_distribution() -> None:
    s = scenario()
    world = World(s, 3)
    stable, canary = world.tick(0.0, 600.0, 50.0)
    for served in (stable, canary):
        assert served.buckets.sum() == served.requests
        assert 0 <= served.errors <= served.requests
    cumulative = np.cumsum(stable.buckets)
    bounds = [*s.monitoring.buckets_seconds, float("inf")]
    p99 = promql.histogram_quantile(0.99, list(zip(bounds, cumulative.tolist(), strict=True)))
    assert 0.150 < p99 < 0.200  # true p99 160 ms, inside the 150-200 ms bucket


def test_warmup_spike_and_capacity_knee_slow_the_canary() -> None:
    s = scenario(
        events=[
            {"type": "warmup_spike", "magnitude": 2.0, "decay_seconds": 10},
            {"type": "capacity_knee", "capacity_rps": 50, "latency_slope": 1.0, "error_slope": 0.1},
        ]
    )
    world = World(s, 0)
    world.tick(0.0, 1.0, 10.0)  # weight goes up at t=0: warm-up starts
    fresh, _ = world.canary_conditions(0.0, 10.0)
    later, _ = world.canary_conditions(100.0, 10.0)
    assert fresh == pytest.approx(2.0) and later == pytest.approx(1.0, abs=1e-3)
    factor, errors = world.canary_conditions(100.0, 50.0)  # 100 rps to a canary that handles 50
    assert factor == pytest.approx(2.0, rel=1e-3) and errors == pytest.approx(0.1)
    assert world.canary_is_bad(100.0, 50.0) and not world.canary_is_bad(100.0, 10.0)


def test_the_run_ends_at_the_scenario_duration() -> None:
    # 20 rps: at 5 % the canary never reaches the minimum sample count before 90 s are over.
    s = scenario(traffic={"rps": 20}, duration_seconds=90)
    run = simulate(s, "canarypilot", 0)
    assert run.outcome is Outcome.UNDECIDED
    assert run.simulated_seconds == pytest.approx(90.0)


def test_epoch_is_where_time_starts() -> None:
    sim = Simulation(scenario(), 0, default_settings(scenario()))
    assert sim.now == EPOCH
