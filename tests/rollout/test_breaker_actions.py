"""What the controller does with the breaker's verdicts, under a fake clock."""

from __future__ import annotations

import asyncio

from canarypilot._exceptions import RouterUnavailable
from canarypilot.clock import FakeClock
from canarypilot.rollout import EventKind, Notification, Phase, RolloutController, StateStore
from canarypilot.routing import RecordingRouter
from tests.rollout.fakes import Health, ScriptedMetrics, make_spec


def after(clock: FakeClock, seconds: float, bad: Health) -> ScriptedMetrics:
    start = clock.now()
    return ScriptedMetrics(clock, lambda t: bad if t - start >= seconds else Health())


def kinds_at(events: list, at: float) -> list[str]:
    return [e.kind.value for e in events if e.at == at]


async def test_one_violation_holds_two_in_a_row_roll_back_in_the_same_tick(clock: FakeClock) -> None:
    events: list = []
    router = RecordingRouter()
    metrics = after(clock, 100, Health(latency_delta=0.20))  # above 15 %, below severe 30 %
    outcome = await RolloutController(
        make_spec(), metrics=metrics, router=router, clock=clock, on_event=events.append
    ).run()

    assert outcome.phase is Phase.ROLLED_BACK
    assert router.weight == 0.0 and router.history[-1] == 0.0
    verdicts = [e.data["action"] for e in events if e.kind is EventKind.VERDICT]
    assert verdicts[-2:] == ["hold", "rollback"]
    rollback = next(e for e in events if e.kind is EventKind.VERDICT and e.data["action"] == "rollback")
    router_zero = next(e for e in events if e.kind is EventKind.ROUTER and e.data["requested"] == 0.0)
    assert router_zero.at == rollback.at  # no wait between the decision and the router
    assert router.history.count(0.0) == 1


async def test_severe_violation_rolls_back_at_once(clock: FakeClock) -> None:
    events: list = []
    router = RecordingRouter()
    # three times the threshold, from 20,000 requests: even the interval's low end is severe
    metrics = after(clock, 100, Health(latency_delta=0.45, requests=20_000))
    outcome = await RolloutController(
        make_spec(), metrics=metrics, router=router, clock=clock, on_event=events.append
    ).run()
    assert outcome.phase is Phase.ROLLED_BACK
    verdicts = [e for e in events if e.kind is EventKind.VERDICT]
    assert verdicts[0].data["action"] == "proceed"
    # the canary turns bad at 100 s, just after the change to 10 %: the looks whose window
    # starts in the warm-up after the change hold ...
    bad = [v for v in verdicts if v.at - 1_000_000 > 100]
    assert bad[0].data["action"] == "hold" and "warm-up" in bad[0].data["reasons"][-1]
    # ... and the first window after it rolls back at once, with no second violation
    assert verdicts[-1].data["action"] == "rollback"
    assert verdicts[-1].data["consecutive_violations"] == 1
    assert verdicts[-1].at - 1_000_000 <= 100 + 150  # within 150 s of the onset
    assert any("at once" in r for r in outcome.reasons)


async def test_latency_violation_in_warmup_holds_without_counting(clock: FakeClock) -> None:
    events: list = []
    metrics = ScriptedMetrics(clock, lambda t: Health(latency_delta=0.20))
    spec = make_spec(breaker={"warmup_seconds": 200, "consecutive_violations": 2})
    outcome = await RolloutController(
        spec, metrics=metrics, router=RecordingRouter(), clock=clock, on_event=events.append
    ).run()
    verdicts = [e for e in events if e.kind is EventKind.VERDICT]
    # inside the 200 s warm-up after the change to 5 %: held, counter stays 0
    assert all(v.data["consecutive_violations"] == 0 for v in verdicts if v.at - 1_000_000 < 200)
    assert verdicts[0].data["action"] == "hold" and "warm-up" in verdicts[0].data["reasons"][-1]
    # after the warm-up the violations count, and two in a row roll back
    assert outcome.phase is Phase.ROLLED_BACK
    assert verdicts[-1].at - 1_000_000 >= 200


async def test_error_violation_counts_even_in_warmup(clock: FakeClock) -> None:
    events: list = []
    metrics = ScriptedMetrics(clock, lambda t: Health(error_rate=0.03))  # +3 points > 2
    spec = make_spec(breaker={"warmup_seconds": 10_000})
    outcome = await RolloutController(
        spec, metrics=metrics, router=RecordingRouter(), clock=clock, on_event=events.append
    ).run()
    assert outcome.phase is Phase.ROLLED_BACK
    counts = [e.data["consecutive_violations"] for e in events if e.kind is EventKind.VERDICT]
    # counted from the first window with enough requests, warm-up or not; two roll back
    assert 1 in counts and counts[-1] == 2 and counts == sorted(counts)


async def test_metrics_outage_holds_then_rolls_back_after_the_limit(clock: FakeClock) -> None:
    events: list = []
    router = RecordingRouter()
    metrics = after(clock, 100, Health(offline=True))
    spec = make_spec(breaker={"metrics_outage_seconds": 120})
    outcome = await RolloutController(
        spec, metrics=metrics, router=router, clock=clock, on_event=events.append
    ).run()
    assert outcome.phase is Phase.ROLLED_BACK
    assert router.weight == 0.0
    outage = [
        e for e in events if e.kind is EventKind.VERDICT and "metrics unavailable" in e.data["reasons"][0]
    ]
    assert [e.data["action"] for e in outage][-1] == "rollback"
    assert all(e.data["action"] == "hold" for e in outage[:-1]) and len(outage) >= 3
    assert outage[-1].at - outage[0].at > 120


async def test_metrics_back_in_time_clear_the_outage(clock: FakeClock) -> None:
    start = clock.now()
    metrics = ScriptedMetrics(clock, lambda t: Health(offline=100 <= t - start < 160))
    outcome = await RolloutController(
        make_spec(breaker={"metrics_outage_seconds": 120}),
        metrics=metrics,
        router=RecordingRouter(),
        clock=clock,
    ).run()
    assert outcome.phase is Phase.PROMOTED


async def test_rollback_retries_a_failing_router_with_backoff(clock: FakeClock) -> None:
    router = RecordingRouter()
    metrics = after(clock, 100, Health(latency_delta=0.5))
    controller = RolloutController(make_spec(), metrics=metrics, router=router, clock=clock)
    real_reset = router.reset
    failures = {"left": 3}

    async def flaky_reset() -> None:
        if failures["left"]:
            failures["left"] -= 1
            raise RouterUnavailable("runtime socket refused")
        await real_reset()

    router.reset = flaky_reset  # type: ignore[method-assign]
    outcome = await controller.run()
    assert outcome.phase is Phase.ROLLED_BACK and router.weight == 0.0
    assert [s for s in clock.slept if s < 1][-3:] == [0.05, 0.1, 0.2]


async def test_unconfirmed_rollback_fails_loudly_and_resume_finishes_it(clock: FakeClock, tmp_path) -> None:
    router = RecordingRouter()
    metrics = after(clock, 100, Health(latency_delta=0.5))

    async def broken_reset() -> None:
        raise RouterUnavailable("haproxy is down")

    router.reset = broken_reset  # type: ignore[method-assign]
    with StateStore(tmp_path) as store:
        outcome = await RolloutController(
            make_spec(), metrics=metrics, router=router, clock=clock, store=store
        ).run()
    assert outcome.phase is Phase.FAILED
    assert router.weight > 0  # the canary still takes traffic, and nobody claims otherwise
    assert any("rollback could not be confirmed" in r for r in outcome.reasons)

    fixed = RecordingRouter(weight=router.weight)
    with StateStore(tmp_path) as store:
        again = await RolloutController(
            make_spec(), metrics=metrics, router=fixed, clock=clock, store=store
        ).run()
    assert again.phase is Phase.ROLLED_BACK and fixed.weight == 0.0


async def test_a_hanging_webhook_never_delays_the_rollback(clock: FakeClock) -> None:
    events: list = []
    released = asyncio.Event()

    class HangingNotifier:
        def __init__(self) -> None:
            self.seen: list[Notification] = []

        async def notify(self, notification: Notification) -> None:
            self.seen.append(notification)
            await released.wait()
            raise ConnectionError("webhook timed out")

    notifier = HangingNotifier()
    router = RecordingRouter()
    metrics = after(clock, 100, Health(latency_delta=0.5))
    controller = RolloutController(
        make_spec(), metrics=metrics, router=router, clock=clock, notifier=notifier, on_event=events.append
    )
    task = asyncio.create_task(controller.run())
    while router.weight != 0.0 or not router.history or router.history[-1] != 0.0:
        await asyncio.sleep(0)
    assert not task.done()  # rolled back while the webhook is still hanging
    released.set()
    outcome = await task
    assert outcome.phase is Phase.ROLLED_BACK
    assert notifier.seen[-1].phase == "rolled_back" and notifier.seen[-1].weight == 0.0
    assert any(e.kind is EventKind.NOTIFICATION_FAILED for e in events)
