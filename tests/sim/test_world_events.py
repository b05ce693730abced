"""The world's events change the simulated series the way the scenario says, and the
ground truth follows the canary's real behaviour, not only the events that name a regression."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import numpy as np
import pytest

from canarypilot.sim.engine import SimClock, SimMetrics, Simulation, default_settings, simulate
from canarypilot.sim.scenario import Scenario, parse_scenario
from canarypilot.sim.timeline import Outcome
from canarypilot.sim.world import CANARY, STABLE, World

BUCKETS = [10, 25, 50, 75, 100, 150, 200, 250, 300, 400, 500, 750, 1000, 2500, 5000]


def scenario(**extra: Any) -> Scenario:
    data: dict[str, Any] = {
        "name": "t",
        "traffic": {"rps": 200},
        "stable": {"latency": {"median_ms": 50, "p99_ms": 160}, "error_rate": 0.001},
        "slo": {"latency_ms": 250},
        "monitoring": {"buckets_ms": BUCKETS},
        **extra,
    }
    return parse_scenario(data)


def mean_ms(world: World, t: float, dt: float = 10.0, weight: float = 50.0) -> tuple[float, float]:
    """Mean latency of stable and canary over ``[t, t + dt)``, in ms."""
    stable, canary = world.tick(t, dt, weight)
    return stable.latency_sum / stable.requests * 1000, canary.latency_sum / canary.requests * 1000


# --- ground truth -------------------------------------------------------------------------


def test_a_canary_model_slower_than_stable_beyond_the_slo_is_bad() -> None:
    slow = scenario(canary={"latency": {"median_ms": 62.5, "p99_ms": 200}})  # p99 +25 %
    assert slow.expect == "rollback" and slow.regression_onset() == 0.0
    run = simulate(slow, "flagger", 0)  # Flagger's absolute 250 ms bound cannot see it
    assert run.outcome is Outcome.PROMOTED
    assert run.onset == pytest.approx(1.0)  # the first tick with canary traffic
    assert run.bad_requests > 1000  # counted to the end of the scenario, as for a regression


def test_a_canary_model_within_the_slo_is_healthy() -> None:
    close = scenario(canary={"latency": {"median_ms": 55, "p99_ms": 176}})  # p99 +10 %
    assert close.expect == "promote" and close.regression_onset() is None
    run = simulate(close, "static", 0)
    assert run.onset is None and run.bad_requests == 0


def test_canary_errors_beyond_the_slo_are_bad_and_the_slo_is_the_scenarios() -> None:
    failing = scenario(canary={"error_rate": 0.03})  # +2.9 points > 2 points
    assert failing.expect == "rollback"
    run = simulate(failing, "static", 1)
    assert run.onset == pytest.approx(1.0) and run.bad_requests > 0
    lenient = scenario(canary={"error_rate": 0.03}, slo={"latency_ms": 250, "max_error_delta": 0.05})
    assert lenient.expect == "promote"


def test_a_ramp_grows_linearly_and_turns_bad_when_it_crosses_the_threshold() -> None:
    s = scenario(events=[{"type": "ramp", "at_seconds": 100, "duration_seconds": 600, "latency_factor": 2}])
    assert s.expect == "rollback"
    # +100 % over 600 s: +15 % after 90 s.
    assert s.regression_onset() == pytest.approx(190.0, abs=0.01)
    world = World(s, 0)
    assert world.canary_conditions(50.0, 10.0)[0] == 1.0
    assert world.canary_conditions(400.0, 10.0)[0] == pytest.approx(1.5)
    assert world.canary_conditions(2000.0, 10.0)[0] == pytest.approx(2.0)
    assert not world.canary_is_bad(180.0, 10.0) and world.canary_is_bad(200.0, 10.0)
    before, after = mean_ms(world, 0.0, 60.0), mean_ms(world, 1000.0, 60.0)
    assert before[1] == pytest.approx(before[0], rel=0.05)
    assert after[1] == pytest.approx(2 * after[0], rel=0.05)


# --- transients ---------------------------------------------------------------------------


def test_a_canary_burst_slows_and_fails_the_canary_only_and_is_not_degradation() -> None:
    s = scenario(
        events=[
            {"type": "burst", "at_seconds": [100], "seconds": 10, "latency_factor": 3, "added_errors": 0.2}
        ]
    )
    assert s.expect == "promote"
    world = World(s, 0)
    quiet_s, quiet_c = mean_ms(world, 50.0)
    stable, canary = world.tick(100.0, 10.0, 50.0)
    assert canary.latency_sum / canary.requests * 1000 == pytest.approx(3 * quiet_c, rel=0.05)
    assert stable.latency_sum / stable.requests * 1000 == pytest.approx(quiet_s, rel=0.05)
    assert canary.errors / canary.requests == pytest.approx(0.201, abs=0.05)
    assert stable.errors / stable.requests < 0.02
    assert not world.canary_is_bad(105.0, 50.0)
    after = mean_ms(world, 110.0)
    assert after[1] == pytest.approx(quiet_c, rel=0.05)


@pytest.mark.parametrize(
    ("on", "slowed"), [("both", {STABLE, CANARY}), ("stable", {STABLE}), ("canary", {CANARY})]
)
def test_a_stall_slows_the_versions_it_is_on_at_the_same_moment(on: str, slowed: set[int]) -> None:
    stall = {"type": "stall", "versions": on, "at_seconds": [60], "seconds": 20, "latency_factor": 4}
    s = scenario(events=[stall])
    world = World(s, 2)
    calm = mean_ms(world, 0.0, 20.0)
    stalled = mean_ms(world, 60.0, 20.0)
    for who in (STABLE, CANARY):
        expected = 4 * calm[who] if who in slowed else calm[who]
        assert stalled[who] == pytest.approx(expected, rel=0.06), (on, who)


def test_random_stalls_are_drawn_up_front_the_same_for_every_strategy() -> None:
    s = scenario(events=[{"type": "stall", "versions": "both", "per_hour": 12, "seconds": 20}])
    first, again, other = World(s, 5).episodes, World(s, 5).episodes, World(s, 6).episodes
    assert first == again and first != other
    assert 3 <= len(first) <= 30  # 12 an hour over 30 minutes: ~6
    assert all(end - start == 20 for start, end, *_ in first)


def test_shared_jitter_moves_both_versions_together_per_interval() -> None:
    shared = World(scenario(events=[{"type": "shared_jitter", "sigma": 0.2, "interval_seconds": 15}]), 0)
    apart = World(scenario(events=[{"type": "noise", "latency_jitter": 0.2}]), 0)

    def correlation(world: World) -> float:
        pairs = np.array([mean_ms(world, 15.0 * i, 15.0) for i in range(60)])
        return float(np.corrcoef(np.log(pairs[:, 0]), np.log(pairs[:, 1]))[0, 1])

    assert correlation(shared) > 0.9  # one factor per interval for both
    assert abs(correlation(apart)) < 0.5  # independent per version and tick
    # The factor is constant within an interval: two ticks of one interval agree.
    a, b = mean_ms(shared, 300.0, 7.0), mean_ms(shared, 307.0, 7.0)
    assert a[0] == pytest.approx(b[0], rel=0.05)


def test_a_slow_warmup_decays_after_each_increase_with_its_time_constant() -> None:
    s = scenario(
        events=[{"type": "warmup_spike", "magnitude": 1.6, "decay_seconds": 120, "added_errors": 0.05}]
    )
    assert s.expect == "promote"
    world = World(s, 0)
    world.tick(0.0, 1.0, 10.0)  # increase to 10 %
    factor, errors = world.canary_conditions(120.0, 10.0)
    assert factor == pytest.approx(1 + 0.6 / math.e) and errors == pytest.approx(0.05 / math.e)
    world.tick(300.0, 1.0, 20.0)  # the next increase starts the warm-up again
    assert world.canary_conditions(300.0, 20.0)[0] == pytest.approx(1.6)
    assert world.canary_conditions(300.0 + 360.0, 20.0)[0] == pytest.approx(1 + 0.6 * math.exp(-3))
    assert not world.canary_is_bad(300.0, 20.0)


# --- monitoring ---------------------------------------------------------------------------


def look(s: Scenario, at: float, window: float, weight: float = 40.0) -> Any:
    sim = Simulation(s, 0, default_settings(s))
    sim.weight = weight
    clock, metrics = SimClock(sim), SimMetrics(sim)

    async def run() -> Any:
        await clock.sleep(at)
        return await metrics.snapshot(sim.target, window_seconds=window)

    return asyncio.run(run())


def test_30s_scrapes_with_20s_lag_hold_no_rate_in_a_short_window() -> None:
    s = scenario(monitoring={"scrape_interval_seconds": 30, "scrape_lag_seconds": 20, "buckets_ms": BUCKETS})
    # At 290 s the newest visible scrape is from 270 s (20 s old) and the one before from 240 s.
    short = look(s, 290.0, 45.0)
    assert short.age_seconds == pytest.approx(20.0)
    assert short.canary.requests is None  # one sample in the window: no rate at all
    # Two samples (240 s, 270 s): 30 s of increase, which increase() extrapolates to the
    # whole 75 s window since both edges are within 1.1 intervals of a sample.
    enough = look(s, 290.0, 75.0)
    assert enough.canary.requests == pytest.approx(80 * 75, rel=0.1)


def test_low_traffic_gives_under_one_canary_request_a_second() -> None:
    s = scenario(traffic={"rps": 10})
    world = World(s, 0)
    _, canary = world.tick(0.0, 600.0, 5.0)
    assert 0.2 < canary.requests / 600 < 1.0


def test_a_stall_on_both_shows_in_both_scraped_p99s_and_then_leaves() -> None:
    stall = {"type": "stall", "versions": "both", "at_seconds": [90], "seconds": 30, "latency_factor": 3}
    s = scenario(events=[stall])
    during = look(s, 125.0, 30.0, weight=50.0)  # scrapes at 90..120 s, visible at 125 s
    after = look(s, 305.0, 30.0, weight=50.0)
    for version in ("stable", "canary"):
        hot, calm = getattr(during, version).p99_seconds, getattr(after, version).p99_seconds
        assert hot is not None and calm is not None
        assert hot > 2 * calm, (version, hot, calm)
