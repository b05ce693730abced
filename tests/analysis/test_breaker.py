"""The circuit breaker's rules, one by one: the article's, then the evidence-aware ones."""

from __future__ import annotations

from canarypilot.analysis import BreakerState, assess, assess_outage, judge, weigh
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


# -- evidence-aware rules -------------------------------------------------------------------


def reading(canary_p99: float = 0.2, canary_err: float = 0.0, requests: float = 1000):
    d = decision(canary_p99, canary_err, requests)
    return d, weigh(d)


def test_a_violation_within_the_noise_holds_uncounted() -> None:
    d, evidence = reading(canary_p99=0.25, requests=450)  # +25 % from 4.5 tail requests
    v, s = assess(d, BreakerState(), now=100, last_weight_change=0, evidence=evidence, window_start=40)
    assert v.action is Action.HOLD and s.consecutive == 0
    assert "within the noise" in v.reasons[-1]


def test_severe_needs_conclusive_evidence_to_skip_two_in_a_row() -> None:
    thin, thin_evidence = reading(canary_p99=0.29, requests=600)  # +45 %, 6 tail requests
    v, s = assess(
        thin, BreakerState(), now=100, last_weight_change=0, evidence=thin_evidence, window_start=40
    )
    assert thin.violations[0].severe and thin_evidence.latency and thin_evidence.latency.beyond_noise
    assert not thin_evidence.latency.conclusive_severe
    assert v.action is Action.HOLD and s.consecutive == 1  # counted, not rolled back
    thick, thick_evidence = reading(canary_p99=0.32, requests=5000)  # +60 %, 50 tail requests
    v, _ = assess(
        thick, BreakerState(), now=100, last_weight_change=0, evidence=thick_evidence, window_start=40
    )
    assert v.action is Action.ROLLBACK and "at once" in v.reasons[-1]


def test_thin_readings_above_the_threshold_roll_back_by_the_sign_test() -> None:
    # +45 % from 300 requests (3 tail requests) is within the noise every time, but five
    # separate windows in a row all above the threshold would happen to a canary within the
    # SLO about 3 % of the time
    d, evidence = reading(canary_p99=0.29, requests=300)
    assert evidence.latency is not None and not evidence.latency.beyond_noise
    state, actions = BreakerState(), []
    for i in range(5):
        v, state = assess(
            d, state, now=100 + 45 * i, last_weight_change=0, evidence=evidence, window_start=55 + 45 * i
        )
        actions.append(v.action)
    assert actions == [Action.HOLD] * 4 + [Action.ROLLBACK]
    assert state.consecutive == 0 and state.above == 5
    assert "separate windows in a row" in v.reasons[-1]


def test_half_the_requests_failing_rolls_back_at_once_even_from_100_requests() -> None:
    d, evidence = reading(canary_err=0.5, requests=100)
    v, _ = assess(d, BreakerState(), now=100, last_weight_change=0, evidence=evidence, window_start=40)
    assert v.action is Action.ROLLBACK


def test_the_second_violation_must_come_from_a_separate_window() -> None:
    d, evidence = reading(canary_p99=0.25, requests=2_000)  # beyond the noise, not conclusive
    _, s1 = assess(d, BreakerState(), now=100, last_weight_change=0, evidence=evidence, window_start=40)
    assert s1.consecutive == 1 and s1.evidence_until == 100
    # same samples read again (window from 55 s, overlapping the first): not counted
    v2, s2 = assess(d, s1, now=115, last_weight_change=0, evidence=evidence, window_start=55)
    assert v2.action is Action.HOLD and s2.consecutive == 1 and "already counted" in v2.reasons[-1]
    # a window that starts where the first was judged: separate evidence, rolled back
    v3, _ = assess(d, s2, now=145, last_weight_change=0, evidence=evidence, window_start=100)
    assert v3.action is Action.ROLLBACK


def test_warmup_is_judged_by_where_the_window_starts() -> None:
    d, evidence = reading(canary_p99=0.4, requests=20_000)  # conclusively severe
    v, s = assess(d, BreakerState(), now=90, last_weight_change=0, evidence=evidence, window_start=10)
    assert v.action is Action.HOLD and s.consecutive == 0  # 90 s after the change, window from 10 s
    v, _ = assess(d, BreakerState(), now=90, last_weight_change=0, evidence=evidence, window_start=30)
    assert v.action is Action.ROLLBACK


def test_a_pass_clears_the_pending_evidence() -> None:
    bad, bad_evidence = reading(canary_p99=0.25, requests=20_000)
    _, s1 = assess(bad, BreakerState(), now=100, last_weight_change=0, evidence=bad_evidence, window_start=40)
    good, good_evidence = reading(requests=20_000)
    _, s2 = assess(good, s1, now=145, last_weight_change=0, evidence=good_evidence, window_start=100)
    assert s2.consecutive == 0 and s2.evidence_until is None


def test_a_conclusive_violation_rolls_back_at_once() -> None:
    # +25 % from 20,000 canary requests (200 beyond the p99): even the favourable end of the
    # interval is above the 10 % threshold, so a second window would add nothing
    d, evidence = reading(canary_p99=0.25, requests=20_000)
    v, s = assess(d, BreakerState(), now=100, last_weight_change=0, evidence=evidence, window_start=40)
    assert v.action is Action.ROLLBACK and v.weight == 0.0 and "rolling back at once" in v.reasons[-1]
    # with the rule off, the same reading waits for a second, separate window
    off = BreakerPolicy(conclusive_at_once=False)  # type: ignore[call-arg]
    v, s = assess(
        d, BreakerState(), now=100, last_weight_change=0, evidence=evidence, window_start=40, policy=off
    )
    assert v.action is Action.HOLD and s.consecutive == 1


def test_a_conclusive_latency_violation_from_a_thin_tail_waits_for_a_second_window() -> None:
    # +60 % from 800 canary requests (8 beyond the p99): conclusive, but the tail is below
    # conclusive_tail_requests (10), and the interval leans on an assumed tail shape
    d, evidence = reading(canary_p99=0.32, requests=800)
    assert evidence.latency is not None and evidence.latency.conclusive_violation
    v, s = assess(d, BreakerState(), now=100, last_weight_change=0, evidence=evidence, window_start=40)
    assert v.action is Action.HOLD and s.consecutive == 1
