"""The exception's category decides what the controller and the retry helper do
(issue 12): a temporary error is retried after its delay, a permanent one never, and a
rejected query is not an outage."""

from __future__ import annotations

from typing import Any

import pytest

from canarypilot._exceptions import (
    ConfigError,
    MetricsUnavailable,
    QueryError,
    RouterError,
    RouterUnavailable,
    TemporaryError,
)
from canarypilot.clock import FakeClock
from canarypilot.model import StepHistory, Target
from canarypilot.retry import Backoff, retrying
from canarypilot.rollout import EventKind, Phase, RolloutController
from canarypilot.routing import RecordingRouter
from tests.rollout.fakes import ScriptedMetrics, make_spec


class Flaky:
    """Fails with ``errors`` in turn, then answers ``"ok"``."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


async def test_temporary_errors_are_retried_with_backoff_or_their_own_delay(clock: FakeClock) -> None:
    call = Flaky(RouterUnavailable("busy"), MetricsUnavailable("503", delay=7.0), RouterUnavailable("busy"))
    assert await retrying(call, clock=clock, retries=3, backoff=Backoff(0.5)) == "ok"
    assert clock.slept == [0.5, 7.0, 2.0], "backoff, then the server's Retry-After, then backoff again"


@pytest.mark.parametrize("error", [RouterError("refused"), QueryError("bad"), ConfigError("typo")])
async def test_permanent_errors_are_never_retried(clock: FakeClock, error: Exception) -> None:
    call = Flaky(error)
    seen: list[tuple[int, bool]] = []
    with pytest.raises(type(error)):
        await retrying(
            call,
            clock=clock,
            retries=5,
            backoff=Backoff(0.1),
            on_failure=lambda e, n, last: seen.append((n, last)),
        )
    assert call.calls == 1 and clock.slept == [] and seen == [(1, True)]


async def test_retries_stop_at_the_count_and_before_the_deadline(clock: FakeClock) -> None:
    call = Flaky(*[TemporaryError("down") for _ in range(10)])
    with pytest.raises(TemporaryError):
        await retrying(call, clock=clock, retries=2, backoff=Backoff(1.0))
    assert call.calls == 3
    call = Flaky(*[TemporaryError("down") for _ in range(10)])
    with pytest.raises(TemporaryError):
        await retrying(call, clock=clock, retries=10, backoff=Backoff(1.0), deadline=clock.now() + 6.5)
    assert call.calls == 3, "waits of 1 and 2 s fit in 6.5 s; the next 4 s would not"


class RefusingRouter(RecordingRouter):
    """Refuses every change above 0 % for good (a bad backend name, a rejected command)."""

    async def set_weight(self, weight: float) -> None:
        if weight > 0:
            raise RouterError("HAProxy refused the weight change: No such server.")
        await super().set_weight(weight)


async def test_a_router_that_refuses_is_not_retried_and_the_rollout_rolls_back(clock: FakeClock) -> None:
    events: list = []
    router = RefusingRouter()
    outcome = await RolloutController(
        make_spec(), metrics=ScriptedMetrics(clock), router=router, clock=clock, on_event=events.append
    ).run()
    failures = [e.data for e in events if e.kind is EventKind.ROUTER_FAILED]
    assert [(f["attempt"], f["gave_up"]) for f in failures] == [(1, True)], "a refusal was retried"
    assert outcome.phase is Phase.ROLLED_BACK and router.weight == 0.0


async def test_a_router_that_does_not_answer_is_retried(clock: FakeClock) -> None:
    events: list = []
    router = RecordingRouter()
    router.failures_left = 2
    outcome = await RolloutController(
        make_spec(), metrics=ScriptedMetrics(clock), router=router, clock=clock, on_event=events.append
    ).run()
    failures = [e.data for e in events if e.kind is EventKind.ROUTER_FAILED]
    assert [(f["attempt"], f["gave_up"]) for f in failures] == [(1, False), (2, False)]
    assert outcome.phase is Phase.PROMOTED


class RejectingMetrics(ScriptedMetrics):
    async def history(self, target: Target, **_: Any) -> StepHistory:
        self.calls.append((self.clock.now(), None))
        raise QueryError("Prometheus rejected the query (bad_data: parse error)", query="up{")


async def test_a_rejected_query_rolls_back_at_once_instead_of_waiting_out_an_outage(clock: FakeClock) -> None:
    metrics = RejectingMetrics(clock)
    spec = make_spec(breaker={"metrics_outage_seconds": 3600})
    started = clock.now()
    outcome = await RolloutController(spec, metrics=metrics, router=RecordingRouter(), clock=clock).run()
    assert outcome.phase is Phase.ROLLED_BACK
    assert len(metrics.calls) == 1, "a rejected query was asked again"
    assert any("rejects the query" in r for r in outcome.reasons)
    assert clock.now() - started < 3600, "it waited out the outage limit"
