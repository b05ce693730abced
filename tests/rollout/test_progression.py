"""Progression under a fake clock: the schedule, the growth cap, the window guard."""

from __future__ import annotations

from dataclasses import replace

import pytest

from canarypilot.clock import FakeClock
from canarypilot.rollout import EventKind, Phase, RolloutController
from canarypilot.routing import RecordingRouter
from tests.rollout.fakes import Health, ScriptedMetrics, make_spec


async def test_healthy_canary_doubles_each_step_then_promotes(clock: FakeClock) -> None:
    router = RecordingRouter()
    metrics = ScriptedMetrics(clock)
    events: list = []
    outcome = await RolloutController(
        make_spec(), metrics=metrics, router=router, clock=clock, on_event=events.append
    ).run()

    assert outcome.phase is Phase.PROMOTED
    # safe weight is 100 throughout, so only the growth cap (x2) limits the steps
    assert router.history == [5.0, 10.0, 20.0, 40.0, 100.0]
    # 1,000 canary requests (10 beyond the p99) never make a conclusive pass, so every step
    # lasts its full pause: the article's 60 + 90 + 120 + 180 s
    assert clock.now() - 1_000_000.0 == 450.0
    # analysed every 15 s from the end of the window guard (45 s) to the end of each pause
    changes = [e.at for e in events if e.kind is EventKind.ROUTER]
    for start, end in zip(changes, changes[1:], strict=False):
        looks = [at for at, _ in metrics.calls if start < at <= end]
        assert looks[0] - start == 45 and looks[-1] == end
        assert all(b - a == 15 for a, b in zip(looks, looks[1:], strict=False))


async def test_weight_follows_the_safe_weight_down_when_deltas_worsen(clock: FakeClock) -> None:
    # within the SLO (< 15 %) but worse: 12 % slower gives a safe weight of 5 + e^-1.2 * 95 = 33.6 %
    start = clock.now()
    metrics = ScriptedMetrics(clock, lambda t: Health(latency_delta=0.0 if t - start < 300 else 0.12))
    router = RecordingRouter()
    spec = make_spec(rollout={"pauses_seconds": [60, 90, 120, 180, 60]})
    outcome = await RolloutController(spec, metrics=metrics, router=router, clock=clock).run()

    assert outcome.phase is Phase.PROMOTED
    # 40 % after three doublings, then down to the safe weight, then the last analysis promotes
    assert router.history == [5.0, 10.0, 20.0, 40.0, 33.6, 100.0]


async def test_growth_cap_is_configurable(clock: FakeClock) -> None:
    router = RecordingRouter()
    spec = make_spec(rollout={"max_growth_factor": 3.0})
    await RolloutController(spec, metrics=ScriptedMetrics(clock), router=router, clock=clock).run()
    assert router.history == [5.0, 15.0, 45.0, 100.0, 100.0][: len(router.history)]
    assert router.history[-1] == 100.0


async def test_window_never_reaches_back_before_the_last_weight_change(clock: FakeClock) -> None:
    events = []
    metrics = ScriptedMetrics(clock)
    spec = make_spec(rollout={"scrape_lag_seconds": 20, "window_tail_requests": 0}, query={"window": "5m"})
    await RolloutController(
        spec, metrics=metrics, router=RecordingRouter(), clock=clock, on_event=events.append
    ).run()

    changes = [e.at for e in events if e.kind is EventKind.ROUTER]
    for at, window in metrics.calls:
        last_change = max(c for c in changes if c < at)
        assert window is not None
        # samples stamped after the change count only traffic at the new weight ...
        assert at - window >= last_change - 1e-9
        # ... and at least min_window_seconds of the window is older than the scrape lag
        assert 30 + 20 <= window <= 300


async def test_window_shrinks_to_the_recent_samples_at_high_traffic(clock: FakeClock) -> None:
    # 200 requests/s in all; fifty requests beyond the p99 need 5,000 canary requests: 250 s
    # at 10 % (the whole window since the change), 62.5 s + 15 s of lag at 40 %.
    router = RecordingRouter()

    class Traffic(ScriptedMetrics):
        async def snapshot(self, target, *, window_seconds=None):  # type: ignore[no-untyped-def]
            snap = await super().snapshot(target, window_seconds=window_seconds)
            served = 200 * router.weight / 100 * (window_seconds or 300)
            return replace(snap, canary=replace(snap.canary, requests=served))

    metrics = Traffic(clock)
    events: list = []
    spec = make_spec(rollout={"early_advance": False})  # each step lasts its whole pause
    await RolloutController(spec, metrics=metrics, router=router, clock=clock, on_event=events.append).run()
    at_40 = next(e.at for e in events if e.kind is EventKind.ROUTER and e.data["requested"] == 40.0)
    # the window starts after the 30 s warm-up; once that stretch is longer than needed it slides
    late = [window for at, window in metrics.calls if at >= at_40 + 30 + 77.5]
    assert late and all(window == pytest.approx(77.5) for window in late)
    at_10 = next(e.at for e in events if e.kind is EventKind.ROUTER and e.data["requested"] == 10.0)
    at_20 = next(e.at for e in events if e.kind is EventKind.ROUTER and e.data["requested"] == 20.0)
    # at 10 % no allowed window holds enough, so each is the longest allowed: from the change,
    # then (once 45 s of it are published) from the end of the 30 s warm-up
    assert [w for at, w in metrics.calls if at_10 < at <= at_20] == [45.0, 60.0, 45.0, 60.0]


async def test_too_short_a_window_waits_instead_of_judging(clock: FakeClock) -> None:
    # a 20 s pause with 15 s scrape lag leaves a 5 s window: below the 30 s minimum
    metrics = ScriptedMetrics(clock)
    events = []
    spec = make_spec(rollout={"pauses_seconds": [20, 20]})
    outcome = await RolloutController(
        spec, metrics=metrics, router=RecordingRouter(), clock=clock, on_event=events.append
    ).run()

    assert outcome.phase is Phase.PROMOTED
    assert all(window is not None and window >= 30 for _, window in metrics.calls)
    assert any(e.kind is EventKind.WAITING and e.data["reason"] == "window guard" for e in events)


async def test_too_few_canary_requests_hold_and_reanalyse(clock: FakeClock) -> None:
    start = clock.now()
    metrics = ScriptedMetrics(clock, lambda t: Health(requests=10 if t - start < 120 else 1000))
    router = RecordingRouter()
    events = []
    outcome = await RolloutController(
        make_spec(), metrics=metrics, router=router, clock=clock, on_event=events.append
    ).run()

    assert outcome.phase is Phase.PROMOTED
    holds = [e for e in events if e.kind is EventKind.VERDICT and e.data["action"] == "hold"]
    assert holds, "a canary with 10 requests must not be judged"
    assert router.history[:2] == [5.0, 10.0]
    # held at 5 % until the data was there (60 s pause + 30 s re-analysis intervals)
    first_move = next(e for e in events if e.kind is EventKind.ROUTER and e.data["requested"] == 10.0)
    assert first_move.at - start >= 120


async def test_every_event_is_json_and_timestamped(clock: FakeClock) -> None:
    import json

    events = []
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
