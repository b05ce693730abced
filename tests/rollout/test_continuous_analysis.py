"""Analyses while a step's pause runs, evidence-gated severity, early advance — under a fake clock."""

from __future__ import annotations

import contextlib

from canarypilot.clock import FakeClock
from canarypilot.rollout import EventKind, Phase, RolloutController, StateStore
from canarypilot.routing import RecordingRouter
from tests.rollout.fakes import Health, ScriptedMetrics, make_spec

START = 1_000_000.0


def scripted(clock: FakeClock, health) -> ScriptedMetrics:  # type: ignore[no-untyped-def]
    return ScriptedMetrics(clock, lambda t: health(t - START))


async def run(clock: FakeClock, metrics: ScriptedMetrics, **sections: dict[str, object]):  # type: ignore[no-untyped-def]
    events: list = []
    router = RecordingRouter()
    outcome = await RolloutController(
        make_spec(**sections), metrics=metrics, router=router, clock=clock, on_event=events.append
    ).run()
    return outcome, router, events


async def test_a_canary_that_degrades_mid_pause_is_rolled_back_before_the_pause_ends(
    clock: FakeClock,
) -> None:
    # full pauses (no conclusive pass from 1,000 requests): 40 % from 270 s, its pause ends at 450 s
    metrics = scripted(clock, lambda t: Health(error_rate=0.08) if t >= 330 else Health())
    outcome, router, events = await run(clock, metrics)
    assert outcome.phase is Phase.ROLLED_BACK and router.history == [5.0, 10.0, 20.0, 40.0, 0.0]
    rollback = next(e for e in events if e.kind is EventKind.VERDICT and e.data["action"] == "rollback")
    # the first look once the errors began (looks every 15 s from 315 s); the article's
    # controller would have served them until the pause ended at 450 s
    assert rollback.at - START == 330
    assert "at once" in rollback.data["reasons"][-1]


async def test_a_severe_reading_from_few_requests_needs_a_second_window(clock: FakeClock) -> None:
    # +45 % from 600 canary requests (6 beyond the p99): beyond the noise, not conclusive
    metrics = scripted(clock, lambda t: Health(latency_delta=0.45, requests=600))
    outcome, _, events = await run(clock, metrics)
    assert outcome.phase is Phase.ROLLED_BACK
    counted = [e for e in events if e.kind is EventKind.VERDICT and e.data["consecutive_violations"]]
    assert [e.data["action"] for e in counted] == ["hold", "rollback"]
    # the second window starts where the first violation was judged: no sample read twice
    second_look = next(w for at, w in metrics.calls if at == counted[1].at)
    assert counted[1].at - second_look >= counted[0].at - 1e-9


async def test_the_same_reading_from_many_requests_rolls_back_at_once(clock: FakeClock) -> None:
    metrics = scripted(clock, lambda t: Health(latency_delta=0.6, requests=5000))
    outcome, _, events = await run(clock, metrics)
    verdicts = [e for e in events if e.kind is EventKind.VERDICT]
    assert outcome.phase is Phase.ROLLED_BACK
    assert verdicts[-1].data["consecutive_violations"] == 1 and verdicts[-1].data["action"] == "rollback"
    # judged on the first window clear of the 30 s warm-up: 30 s + 45 s
    assert verdicts[-1].at - START == 75


async def test_conclusive_passes_advance_early_but_never_before_half_the_schedule(
    clock: FakeClock,
) -> None:
    # 20,000 canary requests, identical p99: conclusive at every look
    metrics = scripted(clock, lambda t: Health(requests=20_000))
    outcome, router, events = await run(clock, metrics)
    assert outcome.phase is Phase.PROMOTED and router.history == [5.0, 10.0, 20.0, 40.0, 100.0]
    moves = [e.at - START for e in events if e.kind is EventKind.ROUTER]
    # each step advances at its first look (window guard: 45 s), not at its pause's end ...
    assert moves[:4] == [0, 45, 90, 135]
    # ... but 100 % waits for half of the 450 s schedule
    assert moves[-1] == 225
    decisions = [e for e in events if e.kind is EventKind.DECISION]
    assert [d.data.get("early") for d in decisions[:3]] == [True, True, True]
    waits = [e.data["reason"] for e in events if e.kind is EventKind.WAITING]
    assert "bake time before 100%" in waits


async def test_early_advance_can_be_switched_off(clock: FakeClock) -> None:
    metrics = scripted(clock, lambda t: Health(requests=20_000))
    outcome, _, events = await run(clock, metrics, rollout={"early_advance": False})
    assert outcome.phase is Phase.PROMOTED
    assert [e.at - START for e in events if e.kind is EventKind.ROUTER] == [0, 60, 150, 270, 450]


async def test_a_pending_violation_survives_a_restart(clock: FakeClock, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # counted once at 5 %, then the process dies: the resumed controller must not count the
    # same samples again, and must still roll back on the next separate window
    class Crash(Exception):
        pass

    crashed = {"armed": False, "at": 0.0}

    class Dying(ScriptedMetrics):
        async def snapshot(self, target, *, window_seconds=None):  # type: ignore[no-untyped-def]
            if crashed["armed"]:
                crashed["armed"] = False
                raise Crash
            return await super().snapshot(target, window_seconds=window_seconds)

    def arm(event) -> None:  # type: ignore[no-untyped-def]
        if event.kind is EventKind.VERDICT and event.data.get("consecutive_violations") == 1:
            crashed.update(armed=True, at=event.at)

    metrics = Dying(clock, lambda t: Health(latency_delta=0.25, requests=2_000))
    spec = make_spec()
    router = RecordingRouter()
    with StateStore(tmp_path) as store, contextlib.suppress(Crash):
        await RolloutController(
            spec, metrics=metrics, router=router, clock=clock, store=store, on_event=arm
        ).run()
    assert crashed["at"] > 0
    events: list = []
    with StateStore(tmp_path) as store:
        outcome = await RolloutController(
            spec, metrics=metrics, router=router, clock=clock, store=store, on_event=events.append
        ).run()
    assert outcome.phase is Phase.ROLLED_BACK
    rollback = next(e for e in events if e.kind is EventKind.VERDICT and e.data["action"] == "rollback")
    assert rollback.data["consecutive_violations"] == 2
    window = next(w for at, w in metrics.calls if at == rollback.at)
    assert rollback.at - window >= crashed["at"] - 1e-9
