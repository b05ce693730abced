"""The package's own StaticMetrics fake drives the controller (as the simulator and demo do)."""

from __future__ import annotations

from canarypilot.clock import FakeClock
from canarypilot.metrics.static import StaticMetrics
from canarypilot.model import VersionStats
from canarypilot.rollout import Phase, RolloutController
from canarypilot.routing import RecordingRouter
from tests.rollout.fakes import make_spec


async def test_static_metrics_give_the_controller_a_history_to_climb_the_ladder_on(clock: FakeClock) -> None:
    metrics = StaticMetrics(
        VersionStats("v1-stable", 0.2, 0.0, 10_000), VersionStats("v2-canary", 0.2, 0.0, 1_000), now=clock.now
    )
    router = RecordingRouter()
    outcome = await RolloutController(make_spec(), metrics=metrics, router=router, clock=clock).run()
    assert outcome.phase is Phase.PROMOTED and router.history == [5.0, 10.0, 20.0, 40.0, 80.0, 100.0]
    # analysed every 15 s while each step's pause runs (and once at each change, before any slice)
    assert 30 <= metrics.calls <= 45
