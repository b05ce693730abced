"""Progression under a fake clock: the validated-capacity ladder, the step's history, the pauses."""

from __future__ import annotations

import json

from canarypilot.clock import FakeClock
from canarypilot.rollout import EventKind, Phase, RolloutController
from canarypilot.routing import RecordingRouter
from tests.rollout.fakes import Health, ScriptedMetrics, make_spec

START = 1_000_000.0


def routed(events: list) -> list[tuple[float, float]]:
    return [(e.at, e.data["confirmed"]) for e in events if e.kind is EventKind.ROUTER]


async def test_every_rung_up_to_100_is_capped_and_judged_before_the_next(clock: FakeClock) -> None:
    router = RecordingRouter()
    events: list = []
    outcome = await RolloutController(
        make_spec(rollout={"early_advance": False}),
        metrics=ScriptedMetrics(clock),
        router=router,
        clock=clock,
        on_event=events.append,
    ).run()
    assert outcome.phase is Phase.PROMOTED
    # safe weight 100 throughout: only the growth cap (x2) limits, the last increase included
    assert router.history == [5.0, 10.0, 20.0, 40.0, 80.0, 100.0]
    # each weight reached was analysed (and passed) before the next change, 80 % included
    changes = routed(events)
    for (at, weight), (next_at, _) in zip(changes, changes[1:], strict=False):
        passed = [
            e
            for e in events
            if e.kind is EventKind.VERDICT and at < e.at <= next_at and e.data["action"] == "proceed"
        ]
        assert passed and all(e.weight == weight for e in passed)
    # and each step lasted at least its pause (the fifth reuses the last one, 180 s)
    pauses = [60, 90, 120, 180, 180]
    for (at, _), (next_at, _), pause in zip(changes, changes[1:], pauses, strict=False):
        assert next_at - at >= pause


async def test_a_canary_shown_within_the_slo_moves_on_before_its_pause_but_not_to_100_before_the_bake(
    clock: FakeClock,
) -> None:
    router = RecordingRouter()
    events: list = []
    spec = make_spec()
    outcome = await RolloutController(
        spec, metrics=ScriptedMetrics(clock), router=router, clock=clock, on_event=events.append
    ).run()
    assert outcome.phase is Phase.PROMOTED
    assert router.history == [5.0, 10.0, 20.0, 40.0, 80.0, 100.0]
    changes = routed(events)
    lasted = [b - a for (a, _), (b, _) in zip(changes, changes[1:], strict=False)]
    pauses = [60, 90, 120, 180, 180]
    assert any(d < p for d, p in zip(lasted, pauses, strict=False)), lasted  # some step ended early
    decisions = [e for e in events if e.kind is EventKind.DECISION]
    assert any(e.data["early"] for e in decisions)
    # every early move followed a verdict that showed the canary within the SLO at that weight
    for (at, weight), (next_at, _) in zip(changes, changes[1:], strict=False):
        verdicts = [e for e in events if e.kind is EventKind.VERDICT and at < e.at <= next_at]
        assert verdicts and verdicts[-1].data["action"] == "proceed" and verdicts[-1].weight == weight
    # 100 % never before bake_fraction of the schedule (0.5 of 450 s)
    policy = spec.settings.rollout
    assert changes[-1][0] - changes[0][0] >= policy.bake_fraction * sum(policy.pauses_seconds) - 1.0


async def test_a_capacity_knee_above_the_last_scheduled_weight_is_caught_before_100(clock: FakeClock) -> None:
    router = RecordingRouter()
    # fine up to 50 %, saturated (p99 +60 %, 3 % errors) above: the article's capacity knee
    metrics = ScriptedMetrics(
        clock,
        lambda t: (
            Health(latency_delta=0.6, error_rate=0.03, requests=5000)
            if router.weight > 50
            else Health(requests=5000)
        ),
    )
    outcome = await RolloutController(make_spec(), metrics=metrics, router=router, clock=clock).run()
    assert outcome.phase is Phase.ROLLED_BACK
    assert 80.0 in router.history and 100.0 not in router.history
    assert router.history[-1] == 0.0


async def test_a_larger_growth_factor_reaches_100_from_the_first_weight_it_covers(clock: FakeClock) -> None:
    router = RecordingRouter()
    spec = make_spec(rollout={"max_growth_factor": 3.0})
    await RolloutController(spec, metrics=ScriptedMetrics(clock), router=router, clock=clock).run()
    assert router.history == [5.0, 15.0, 45.0, 100.0]


def test_the_ladder_caps_by_the_safe_weight_until_shown_within_the_slo_and_never_goes_down() -> None:
    from canarypilot.analysis.ladder import next_rung
    from canarypilot.policy import Settings

    settings = Settings()
    assert next_rung(20, 33.6, settings, within_slo=False).weight == 33.6  # safe weight below the cap
    assert next_rung(20, 90, settings, within_slo=False).weight == 40  # growth cap
    assert next_rung(40, 14.5, settings, within_slo=False).weight == 40  # thin sample: hold, not down
    assert next_rung(40, 45, settings, within_slo=False).weight == 40  # too small a step: hold
    assert not next_rung(80, 95, settings, within_slo=False).promote  # 100 % needs the evidence
    assert next_rung(80, 95, settings, within_slo=True).promote
    assert next_rung(40, 45, settings, within_slo=True).weight == 80  # validated: the cap alone


async def test_each_analysis_reads_only_the_history_since_the_last_weight_change(clock: FakeClock) -> None:
    metrics = ScriptedMetrics(clock)
    events: list = []
    await RolloutController(
        make_spec(), metrics=metrics, router=RecordingRouter(), clock=clock, on_event=events.append
    ).run()
    changes = [at for at, _ in routed(events)]
    for at, span in metrics.calls:
        since = at - span
        assert since in changes and not any(since < c < at for c in changes)


async def test_coarse_scrapes_and_remote_write_lag_never_stall_a_healthy_release(clock: FakeClock) -> None:
    # The article's checklist: 30 s scrapes, plus ~20 s of remote-write lag.
    events: list = []
    spec = make_spec(
        query={"scrape_interval_seconds": 30, "slice_seconds": 15},
        prometheus={"url": "http://prometheus:9090"},
        rollout={"scrape_lag_seconds": 20},
    )
    outcome = await RolloutController(
        spec, metrics=ScriptedMetrics(clock), router=RecordingRouter(), clock=clock, on_event=events.append
    ).run()
    assert outcome.phase is Phase.PROMOTED
    first = next(e for e in events if e.kind is EventKind.ANALYSIS)
    # the first look waits for one whole 60 s slice (two scrapes) plus the lag
    assert first.data["window_seconds"] == 60 and first.at - START >= 60 + 20


async def test_too_few_canary_requests_hold_and_reanalyse(clock: FakeClock) -> None:
    metrics = ScriptedMetrics(clock, lambda t: Health(requests=10 if t - START < 120 else 1000))
    router = RecordingRouter()
    events: list = []
    outcome = await RolloutController(
        make_spec(), metrics=metrics, router=router, clock=clock, on_event=events.append
    ).run()
    assert outcome.phase is Phase.PROMOTED
    holds = [e for e in events if e.kind is EventKind.VERDICT and e.data["action"] == "hold"]
    assert holds, "a canary with 10 requests must not be judged"
    first_move = next(e for e in events if e.kind is EventKind.ROUTER and e.data["requested"] == 10.0)
    assert first_move.at - START >= 120


async def test_every_event_is_json_and_timestamped(clock: FakeClock) -> None:
    events: list = []
    await RolloutController(
        make_spec(),
        metrics=ScriptedMetrics(clock),
        router=RecordingRouter(),
        clock=clock,
        on_event=events.append,
    ).run()
    kinds = {e.kind for e in events}
    assert {
        EventKind.STARTED,
        EventKind.ANALYSIS,
        EventKind.VERDICT,
        EventKind.ROUTER,
        EventKind.PHASE,
    } <= kinds
    seqs = [e.seq for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    for e in events:
        json.dumps(e.to_dict(), allow_nan=False)
