"""Operator commands, durable state and resuming, under a fake clock."""

from __future__ import annotations

import asyncio
import contextlib
import json

from canarypilot.clock import FakeClock
from canarypilot.rollout import Command, EventKind, Phase, RolloutController, StateStore
from canarypilot.routing import RecordingRouter
from tests.rollout.fakes import ScriptedMetrics, make_spec


async def run_until(controller: RolloutController, clock: FakeClock, seconds: float) -> asyncio.Task:
    task = asyncio.create_task(controller.run())
    end = clock.now() + seconds
    while clock.now() < end and not task.done():
        await asyncio.sleep(0)
    return task


async def test_pause_keeps_the_weight_and_resume_continues(clock: FakeClock) -> None:
    router = RecordingRouter()
    controller = RolloutController(make_spec(), metrics=ScriptedMetrics(clock), router=router, clock=clock)
    task = await run_until(controller, clock, 70)  # after the first step: 10 %
    controller.request(Command.PAUSE)
    paused_at = router.weight
    for _ in range(2000):  # 2000 s of virtual time
        await asyncio.sleep(0)
    assert router.weight == paused_at == 10.0
    assert controller.state is not None and controller.state.phase is Phase.PAUSED
    controller.request(Command.RESUME)
    outcome = await task
    assert outcome.phase is Phase.PROMOTED and router.history == [5.0, 10.0, 20.0, 40.0, 80.0, 100.0]


async def test_abort_drains_to_zero_and_promote_goes_to_full(clock: FakeClock) -> None:
    router = RecordingRouter()
    controller = RolloutController(make_spec(), metrics=ScriptedMetrics(clock), router=router, clock=clock)
    task = await run_until(controller, clock, 70)
    controller.request(Command.ABORT)
    outcome = await task
    assert outcome.phase is Phase.ABORTED and router.weight == 0.0

    router2 = RecordingRouter()
    clock2 = FakeClock()
    controller2 = RolloutController(
        make_spec(), metrics=ScriptedMetrics(clock2), router=router2, clock=clock2
    )
    task2 = await run_until(controller2, clock2, 5)
    controller2.request(Command.PROMOTE)
    assert (await task2).phase is Phase.PROMOTED and router2.history == [5.0, 100.0]


async def test_resume_continues_without_repeating_or_losing_a_step(clock: FakeClock, tmp_path) -> None:
    router = RecordingRouter()
    with StateStore(tmp_path) as store:
        controller = RolloutController(
            make_spec(), metrics=ScriptedMetrics(clock), router=router, clock=clock, store=store
        )
        task = await run_until(controller, clock, 200)  # two steps done: 5 -> 10 -> 20
        task.cancel()  # the process dies
        await asyncio.gather(task, return_exceptions=True)
    assert router.history == [5.0, 10.0, 20.0]

    with StateStore(tmp_path) as store:
        outcome = await RolloutController(
            make_spec(), metrics=ScriptedMetrics(clock), router=router, clock=clock, store=store
        ).run()
        events = store.events()
    assert outcome.phase is Phase.PROMOTED
    assert router.history == [5.0, 10.0, 20.0, 40.0, 80.0, 100.0]  # no step twice, none skipped
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert [e.kind for e in events].count(EventKind.STARTED) == 1
    assert EventKind.RESUMED in [e.kind for e in events]
    # the pause of the interrupted step is not restarted: its 120 s pause ends 120 s after
    # the change to 20 %, whatever the restart
    router_events = [e for e in events if e.kind is EventKind.ROUTER]
    assert router_events[3].at - router_events[2].at == 120.0


async def test_a_pending_change_found_on_resume_is_completed_not_redecided(
    clock: FakeClock, tmp_path
) -> None:
    router = RecordingRouter()

    class DiesOnSecondChange(RecordingRouter):
        async def set_weight(self, weight: float) -> None:
            if weight == 20.0:
                raise asyncio.CancelledError  # killed between "pending" and the router call
            await router.set_weight(weight)

        async def get_weight(self) -> float:
            return router.weight

    with StateStore(tmp_path) as store:
        with contextlib.suppress(asyncio.CancelledError):
            await RolloutController(
                make_spec(),
                metrics=ScriptedMetrics(clock),
                router=DiesOnSecondChange(),
                clock=clock,
                store=store,
            ).run()
        assert store.load() is not None and store.load().pending.weight == 20.0  # type: ignore[union-attr]
    calls_before = clock.now()
    with StateStore(tmp_path) as store:
        metrics = ScriptedMetrics(clock)
        outcome = await RolloutController(
            make_spec(), metrics=metrics, router=router, clock=clock, store=store
        ).run()
    assert outcome.phase is Phase.PROMOTED
    assert router.history == [5.0, 10.0, 20.0, 40.0, 80.0, 100.0]
    # the 20 % change was completed first: the first look reads the history since that change
    assert metrics.calls[0] == (calls_before, 0.0)


async def test_router_drift_is_reconciled_on_resume(clock: FakeClock, tmp_path) -> None:
    router = RecordingRouter()
    with StateStore(tmp_path) as store:
        controller = RolloutController(
            make_spec(), metrics=ScriptedMetrics(clock), router=router, clock=clock, store=store
        )
        task = await run_until(controller, clock, 70)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    router.weight = 50.0  # somebody edited the router by hand
    events: list = []
    with StateStore(tmp_path) as store:
        controller = RolloutController(
            make_spec(),
            metrics=ScriptedMetrics(clock),
            router=router,
            clock=clock,
            store=store,
            on_event=events.append,
        )
        task = await run_until(controller, clock, 1)
        assert router.weight == 10.0
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    reconciled = next(e for e in events if e.kind is EventKind.RECONCILED)
    assert reconciled.data["router_weight"] == 50.0 and "drifted" in reconciled.data["action"]


async def test_audit_log_is_json_lines_and_survives_a_torn_tail(clock: FakeClock, tmp_path) -> None:
    with StateStore(tmp_path) as store:
        await RolloutController(
            make_spec(), metrics=ScriptedMetrics(clock), router=RecordingRouter(), clock=clock, store=store
        ).run()
    audit = tmp_path / "audit.jsonl"
    lines = audit.read_text().splitlines()
    assert all(json.loads(line)["rollout"] == "payment-api" for line in lines)
    with audit.open("ab") as fh:
        fh.write(b'{"seq": 99, "kind": "ana')  # a crash in the middle of a write
    with StateStore(tmp_path) as store:
        assert len(store.events()) == len(lines)
        assert store.next_seq() == len(lines) + 1


async def test_a_state_dir_belongs_to_one_rollout(clock: FakeClock, tmp_path) -> None:
    import pytest

    from canarypilot._exceptions import StateError
    from canarypilot.model import Target
    from canarypilot.rollout import RolloutSpec

    with StateStore(tmp_path) as store:
        await RolloutController(
            make_spec(), metrics=ScriptedMetrics(clock), router=RecordingRouter(), clock=clock, store=store
        ).run()
    other = RolloutSpec("checkout", Target("checkout"))
    with StateStore(tmp_path) as store, pytest.raises(StateError, match="holds rollout 'payment-api'"):
        await RolloutController(
            other, metrics=ScriptedMetrics(clock), router=RecordingRouter(), clock=clock, store=store
        ).run()
