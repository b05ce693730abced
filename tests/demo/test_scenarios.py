"""The scenarios and the compressed timings: the ratios that make the decisions meaningful."""

from __future__ import annotations

import pytest

from canarypilot._exceptions import ConfigError
from canarypilot.demo.scenarios import FAST, SCENARIOS, Expected, Pacing, scenario
from canarypilot.policy import Settings


def test_the_five_scenarios_of_the_issue_exist_with_their_expected_outcomes() -> None:
    assert {name: s.expected for name, s in SCENARIOS.items()} == {
        "healthy": Expected.PROMOTED,
        "latency-regression": Expected.ROLLED_BACK,
        "error-regression": Expected.ROLLED_BACK,
        "warmup-spike": Expected.PROMOTED,
        "capacity-knee": Expected.ROLLED_BACK,
    }


def test_an_unknown_scenario_is_a_config_error_naming_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="healthy"):
        scenario("nope")


@pytest.mark.parametrize(
    "pacing", [Pacing(), FAST, Pacing(duration=30, rps=400), Pacing(duration=600, rps=100)]
)
def test_timings_keep_the_ratios_the_decisions_depend_on(pacing: Pacing) -> None:
    settings = Settings().merged(pacing.settings_overrides())
    first_weight = settings.interpolation.min_weight / 100
    # the first analysis has enough canary requests to judge (at the nominal rate)
    assert pacing.rps * first_weight * pacing.window >= settings.slo.min_canary_requests
    # the window guard never blocks the scheduled analysis
    assert pacing.pause - pacing.lag >= pacing.window >= settings.rollout.min_window_seconds
    # the warm-up grace covers the first analysis after a change, not the re-check
    assert pacing.pause < settings.breaker.warmup_seconds < pacing.pause + pacing.recheck
    # the warm-up spike is over before the re-check's window starts
    spike = SCENARIOS["warmup-spike"].canary.warmup_spike_seconds
    assert pacing.pause + pacing.recheck - pacing.window >= spike
    # ...but it is inside the first window, so the grace is really exercised
    assert pacing.lag < spike
    assert settings.rollout.pauses_seconds == [pacing.pause] * pacing.steps
    assert pacing.deadline > pacing.duration


def test_the_capacity_knee_sits_between_two_weights_the_controller_visits() -> None:
    # growth is capped at x2 from 5%: 5, 10, 20, 40 -- the knee must lie between 20 and 40
    knee = SCENARIOS["capacity-knee"].canary.knee_share
    assert knee is not None and 0.2 < knee < 0.4


@pytest.mark.parametrize(
    "kwargs",
    [{"duration": 5}, {"duration": 10_000}, {"rps": 10}, {"rps": 1e6}, {"duration": 30, "rps": 100}],
)
def test_out_of_range_timings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        Pacing(**kwargs)
