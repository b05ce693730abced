"""The circuit breaker's rules, one by one."""

from __future__ import annotations

from canarypilot.analysis import BreakerState, assess, assess_outage, judge
from canarypilot.model import Action, Decision, Snapshot, Target, VersionStats
from canarypilot.policy import BreakerPolicy


def decision(canary_p99: float = 0.2, canary_err: float = 0.0, requests: float = 1000) -> Decision:
    return judge(
        Snapshot(
            Target("api"),
            VersionStats("v1-stable", 0.2, 0.0, 10_000),
            VersionStats("v2-canary", canary_p99, canary_err, requests),
            at=0,
            window_seconds=60,
        )
    )


HEALTHY = decision()
SLOW = decision(canary_p99=0.25)  # +25%: a violation, not severe
VERY_SLOW = decision(canary_p99=0.4)  # +100%: severe
ERRORS = decision(canary_err=0.03)  # +3 points: violation, not severe
THIN = decision(requests=10)


def test_proceed_passes_the_weight_and_clears_the_count() -> None:
    verdict, state = assess(HEALTHY, BreakerState(consecutive=1), now=100, last_weight_change=0)
    assert verdict.action is Action.PROCEED and verdict.weight == 100.0
    assert state.consecutive == 0


def test_first_violation_holds_second_rolls_back() -> None:
    v1, s1 = assess(SLOW, BreakerState(), now=100, last_weight_change=0)
    assert v1.action is Action.HOLD and s1.consecutive == 1
    v2, s2 = assess(SLOW, s1, now=160, last_weight_change=0)
    assert v2.action is Action.ROLLBACK and v2.weight == 0.0 and s2.consecutive == 2


def test_a_healthy_reading_in_between_resets_the_count() -> None:
    _, s1 = assess(SLOW, BreakerState(), now=100, last_weight_change=0)
    _, s2 = assess(HEALTHY, s1, now=160, last_weight_change=0)
    v3, _ = assess(SLOW, s2, now=220, last_weight_change=0)
    assert v3.action is Action.HOLD


def test_hold_keeps_the_count() -> None:
    _, s1 = assess(SLOW, BreakerState(), now=100, last_weight_change=0)
    _, s2 = assess(THIN, s1, now=130, last_weight_change=0)
    assert s2.consecutive == 1
    v3, _ = assess(SLOW, s2, now=160, last_weight_change=0)
    assert v3.action is Action.ROLLBACK


def test_severe_violation_rolls_back_at_once() -> None:
    v, _ = assess(VERY_SLOW, BreakerState(), now=100, last_weight_change=0)
    assert v.action is Action.ROLLBACK


def test_warmup_forgives_latency_only_violations_even_severe_ones() -> None:
    v, s = assess(VERY_SLOW, BreakerState(), now=10, last_weight_change=0)
    assert v.action is Action.HOLD and s.consecutive == 0
    assert any("warm-up" in r for r in v.reasons)


def test_warmup_does_not_forgive_errors() -> None:
    policy = BreakerPolicy(consecutive_violations=1)
    v, _ = assess(ERRORS, BreakerState(), now=10, last_weight_change=0, policy=policy)
    assert v.action is Action.ROLLBACK


def test_outage_holds_then_fails_toward_stable() -> None:
    policy = BreakerPolicy(metrics_outage_seconds=60)
    action, _, state = assess_outage(BreakerState(), now=100, error="refused", policy=policy)
    assert action is Action.HOLD and state.outage_since == 100
    action, reasons, _ = assess_outage(state, now=161, error="refused", policy=policy)
    assert action is Action.ROLLBACK and "failing toward stable" in reasons[0]


def test_data_after_an_outage_clears_it() -> None:
    _, _, state = assess_outage(BreakerState(), now=100, error="x")
    _, state = assess(HEALTHY, state, now=110, last_weight_change=0)
    assert state.outage_since is None
