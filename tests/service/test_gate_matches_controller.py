"""The Argo gate and the controller give the same verdict on the same data.

Both read the same StepHistory (here from the shipped StaticMetrics), decide with
``analysis.decide`` and apply the ladder of ``analysis.ladder``: the gate's answer for
Argo's next rung must be what the controller would do with the same verdict.
"""

from __future__ import annotations

import httpx
import pytest

from canarypilot.analysis.ladder import WEIGHT_TOLERANCE, next_rung
from canarypilot.api import verdict
from canarypilot.metrics.history import Slicing
from canarypilot.metrics.static import StaticMetrics
from canarypilot.model import Action, Target, VersionStats
from canarypilot.policy import Settings
from canarypilot.service import create_app

STABLE = VersionStats("v1-stable", 0.200, 0.001, 100_000)
SETTINGS = Settings().merged({"service": {"cache_ttl_seconds": 0}})
CANARIES = {
    "healthy": VersionStats("v2-canary", 0.200, 0.001, 20_000),
    "thin": VersionStats("v2-canary", 0.200, 0.001, 800),
    "erroring": VersionStats("v2-canary", 0.200, 0.06, 5_000),
    "silent": VersionStats("v2-canary"),
}
LADDER = [(5, 10), (10, 20), (20, 35), (35, 50), (50, 75), (75, 100)]


@pytest.mark.parametrize("name", sorted(CANARIES))
@pytest.mark.parametrize(("weight", "rung"), LADDER)
async def test_the_gate_answers_what_the_controller_would_do(name: str, weight: int, rung: int) -> None:
    provider = StaticMetrics(STABLE, CANARIES[name], now=lambda: 1_000_000.0)
    history = await provider.history(
        Target("api"), weight=weight, slicing=Slicing.from_settings(SETTINGS), since=1_000_000.0 - 300
    )
    mine = verdict(history, SETTINGS)
    if mine.action is Action.ROLLBACK:
        controller = "fail"
    elif mine.action is Action.HOLD or mine.weight is None:
        controller = "wait"
    else:
        evidence = mine.decision.evidence
        step = next_rung(
            weight, mine.weight, SETTINGS, within_slo=evidence is not None and evidence.within_slo
        )
        takes = step.promote if rung >= 100 else step.promote or step.weight >= rung - WEIGHT_TOLERANCE
        controller = "pass" if takes else "wait"

    app = create_app(StaticMetrics(STABLE, CANARIES[name], now=lambda: 1_000_000.0), SETTINGS)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gate") as http:
        params = {"service": "api", "weight": str(weight), "since": "999700", "target_weight": str(rung)}
        body = (await http.get("/analyze", params=params)).json()
    assert body["status"] == mine.action.value
    assert body["gate"] == controller
    assert body["weight"] == mine.weight
