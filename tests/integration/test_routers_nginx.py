"""A real nginx (Debian's package) in front of two real servers: include file, nginx -t, reload."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from canarypilot._exceptions import RouterError
from canarypilot.clock import FakeClock
from canarypilot.local.nginx import LocalNginx
from canarypilot.rollout import EventKind, Phase, RolloutController
from tests.rollout.fakes import Health, ScriptedMetrics, make_spec
from tests.routing.backends import SplitCheckingRouter, split, version_servers

pytestmark = pytest.mark.integration

#: nginx's smooth weighted round-robin is exact per worker; one worker, 200 requests.
TOLERANCE = 2.0


async def test_controller_steps_match_the_observed_split_then_promote(tmp_path: Path) -> None:
    clock = FakeClock()
    async with version_servers() as backends:
        with LocalNginx(tmp_path, stable=backends.stable, canary=backends.canary) as lb:
            assert await split(lb.url, 50) == 0.0
            router = SplitCheckingRouter(lb.router(), lb.url)
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
    metrics = ScriptedMetrics(clock, lambda t: Health(error_rate=0.10 if t - start > 100 else 0.0))
    events: list = []
    async with version_servers() as backends:
        with LocalNginx(tmp_path, stable=backends.stable, canary=backends.canary) as lb:
            router = SplitCheckingRouter(lb.router(), lb.url)
            outcome = await RolloutController(
                make_spec(), metrics=metrics, router=router, clock=clock, on_event=events.append
            ).run()
            assert await router.get_weight() == 0.0
            assert "down;" in lb.include.read_text()
    assert outcome.phase is Phase.ROLLED_BACK
    assert [e.data["requested"] for e in events if e.kind is EventKind.ROUTER] == [5.0, 10.0, 0.0]
    assert router.observed[-1] == (0.0, 0.0)


async def test_rollback_reload_is_confirmed_within_a_second(tmp_path: Path) -> None:
    async with version_servers() as backends:
        with LocalNginx(tmp_path, stable=backends.stable, canary=backends.canary) as lb:
            router = lb.router()
            await router.set_weight(50)
            started = time.perf_counter()
            await router.reset()  # nginx -t, SIGHUP, then the new workers answer the new generation
            elapsed = time.perf_counter() - started
            assert await split(lb.url, 50) == 0.0
    assert elapsed < 1.0, f"{elapsed * 1000:.0f} ms"


async def test_a_config_nginx_rejects_is_rolled_back_and_reported(tmp_path: Path) -> None:
    async with version_servers() as backends:
        with LocalNginx(tmp_path, stable=backends.stable, canary=backends.canary) as lb:
            router = lb.router()
            await router.set_weight(20)
            before = lb.include.read_text()
            router.canary = "127.0.0.1:99999"  # a port nginx -t refuses
            with pytest.raises(RouterError, match="nginx -t failed"):
                await router.set_weight(30)
            assert lb.include.read_text() == before  # the previous include is restored
            assert await router.get_weight() == 20.0
            assert abs(await split(lb.url) - 20.0) <= TOLERANCE
