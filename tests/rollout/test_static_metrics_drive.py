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
    # A thin canary (1,000 requests per 5 minutes): the safe weight paces the climb until the
    # evidence shows it within the SLO; every increase at least x1.25 and at most x2.
    assert outcome.phase is Phase.PROMOTED and router.history[-1] == 100.0
    steps = list(zip(router.history, router.history[1:], strict=False))
    assert all(1.25 * a - 0.5 <= b <= 2 * a for a, b in steps[:-1]), router.history
    assert metrics.calls >= 2 * len(router.history)
