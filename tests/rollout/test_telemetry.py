"""The controller's own /metrics: what the rendered dashboard and alerts read."""

from __future__ import annotations

import httpx

from canarypilot.cli.rollout import _serve_metrics
from canarypilot.clock import FakeClock
from canarypilot.local.processes import free_port
from canarypilot.rollout import Phase, RolloutController
from canarypilot.rollout.telemetry import RolloutMetrics
from canarypilot.routing import RecordingRouter
from tests.rollout.fakes import Health, ScriptedMetrics, make_spec


def value(metrics: RolloutMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, {"service": metrics.service, **labels})


async def run(clock: FakeClock, health: Health) -> tuple[RolloutMetrics, RecordingRouter, Phase]:
    metrics = RolloutMetrics("checkout")
    router = RecordingRouter()
    outcome = await RolloutController(
        make_spec(), metrics=ScriptedMetrics(clock, lambda t: health), router=router, clock=clock,
        on_event=metrics.observe,
    ).run()  # fmt: skip
    return metrics, router, outcome.phase


async def test_a_promoted_rollout_reports_the_confirmed_weight_and_its_decisions(clock: FakeClock) -> None:
    metrics, router, phase = await run(clock, Health())
    assert phase is Phase.PROMOTED and router.history[-1] == 100.0
    assert value(metrics, "canarypilot_applied_weight") == 100.0
    proceeds = value(metrics, "canarypilot_decisions_total", status="proceed")
    assert proceeds is not None and proceeds >= 4  # one passing analysis per step at least
    assert value(metrics, "canary_latency_delta") == 0.0
    assert value(metrics, "canarypilot_rollout_phase", phase="promoted") == 1.0
    assert value(metrics, "canarypilot_rollout_phase", phase="progressing") == 0.0


async def test_a_rollback_shows_zero_weight_and_the_rollback_verdict(clock: FakeClock) -> None:
    metrics, router, phase = await run(clock, Health(error_rate=0.5, requests=5000))
    assert phase is Phase.ROLLED_BACK and router.history[-1] == 0.0
    assert value(metrics, "canarypilot_applied_weight") == 0.0
    assert value(metrics, "canarypilot_verdicts_total", action="rollback") == 1.0
    rollbacks = value(metrics, "canarypilot_decisions_total", status="rollback")
    assert rollbacks is not None and rollbacks >= 1.0
    delta = value(metrics, "canary_error_delta")
    assert delta is not None and delta > 0.4


def test_the_metrics_endpoint_serves_them_over_http() -> None:
    port = free_port()
    observe = _serve_metrics("checkout", port, "127.0.0.1")
    assert observe is not None
    body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert 'canarypilot_applied_weight{service="checkout"}' not in body  # nothing routed yet
    assert "# TYPE canarypilot_applied_weight gauge" in body


def test_no_port_means_no_endpoint() -> None:
    assert _serve_metrics("checkout", 0, "127.0.0.1") is None
