"""A real HAProxy (Debian's package) in front of two real servers, driven through its runtime API."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from canarypilot._exceptions import RouterError, RouterUnavailable
from canarypilot.clock import FakeClock
from canarypilot.local.haproxy import BACKEND, LocalHAProxy
from canarypilot.rollout import EventKind, Phase, RolloutController
from canarypilot.routing.haproxy import HAProxyRouter
from tests.rollout.fakes import Health, ScriptedMetrics, make_spec
from tests.routing.backends import SplitCheckingRouter, split, version_servers

pytestmark = pytest.mark.integration

#: Observed canary share vs the weight, in percentage points, over 200 requests.
#: Round-robin is deterministic; two HAProxy threads and concurrent clients add a little noise.
TOLERANCE = 2.0


async def test_controller_steps_match_the_observed_split_then_promote(tmp_path: Path) -> None:
    clock = FakeClock()
    async with version_servers() as backends:
        with LocalHAProxy(tmp_path, stable=backends.stable, canary=backends.canary) as lb:
            assert await split(lb.url, 50) == 0.0  # before the rollout: all stable
            router = SplitCheckingRouter(HAProxyRouter(lb.runtime_socket, backend=BACKEND), lb.url)
            outcome = await RolloutController(
                make_spec(), metrics=ScriptedMetrics(clock), router=router, clock=clock
            ).run()
    assert outcome.phase is Phase.PROMOTED
    # the validated-capacity ladder: 80 % is judged before 100 %
    assert [w for w, _ in router.observed] == [5.0, 10.0, 20.0, 40.0, 80.0, 100.0]
    for weight, observed in router.observed:
        assert abs(observed - weight) <= TOLERANCE, router.observed


async def test_controller_rollback_drains_the_canary_to_zero(tmp_path: Path) -> None:
    clock = FakeClock()
    start = clock.now()
    metrics = ScriptedMetrics(clock, lambda t: Health(latency_delta=0.5 if t - start > 100 else 0.0))
    events: list = []
    async with version_servers() as backends:
        with LocalHAProxy(tmp_path, stable=backends.stable, canary=backends.canary, runtime_tcp=True) as lb:
            router = SplitCheckingRouter(HAProxyRouter(lb.runtime_address, backend=BACKEND), lb.url)
            outcome = await RolloutController(
                make_spec(), metrics=metrics, router=router, clock=clock, on_event=events.append
            ).run()
            assert await router.get_weight() == 0.0
    assert outcome.phase is Phase.ROLLED_BACK
    assert [e.data["requested"] for e in events if e.kind is EventKind.ROUTER] == [5.0, 10.0, 0.0]
    assert router.observed[-1] == (0.0, 0.0)  # drained: not one request reached the canary


async def test_rollback_through_the_runtime_api_is_confirmed_within_100ms(tmp_path: Path) -> None:
    async with version_servers() as backends:
        with LocalHAProxy(tmp_path, stable=backends.stable, canary=backends.canary, canary_weight=128) as lb:
            router = HAProxyRouter(lb.runtime_socket, backend=BACKEND)
            assert await router.get_weight() == 50.0
            started = time.perf_counter()
            await router.reset()  # returns only once HAProxy reports the new weights
            elapsed = time.perf_counter() - started
            assert await router.get_weight() == 0.0
            assert await split(lb.url, 50) == 0.0
    assert elapsed < 0.1, f"{elapsed * 1000:.1f} ms"


async def test_unknown_backend_is_refused_and_a_dead_socket_is_unavailable(tmp_path: Path) -> None:
    async with version_servers() as backends:
        with LocalHAProxy(tmp_path, stable=backends.stable, canary=backends.canary) as lb:
            with pytest.raises(RouterError, match="refused"):
                await HAProxyRouter(lb.runtime_socket, backend="nope").set_weight(10)
            socket_path = lb.runtime_socket
    with pytest.raises(RouterUnavailable):
        await HAProxyRouter(socket_path, backend=BACKEND).get_weight()
