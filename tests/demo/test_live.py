"""The progress views: one readable line per decision, and a live panel that renders."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from canarypilot.demo.live import LiveView, PlainView, Traffic, describe, percent
from canarypilot.rollout.events import EventKind, Phase, RolloutEvent


def _event(kind: EventKind, weight: float = 5.0, **data: Any) -> RolloutEvent:
    return RolloutEvent(1, 110.0, "demo", kind, Phase.PROGRESSING, 1, weight, data)


ANALYSIS = _event(
    EventKind.ANALYSIS,
    latency_delta=0.25,
    error_delta=0.0,
    stable={"p99_seconds": 0.060, "error_rate": 0.001},
    canary={"p99_seconds": 0.075, "error_rate": 0.001},
    window_seconds=8,
)


def test_an_analysis_line_shows_both_p99s_and_the_deltas() -> None:
    line = describe(ANALYSIS)
    assert line is not None
    assert "60.0 ms" in line and "75.0 ms" in line and "+25.0%" in line and "8s" in line


def test_verdicts_router_changes_and_phases_are_described_bookkeeping_is_not() -> None:
    verdict = describe(
        _event(EventKind.VERDICT, action="rollback", reasons=["a", "2 in a row: rolling back"])
    )
    assert verdict == "verdict: ROLLBACK — 2 in a row: rolling back"
    router = describe(_event(EventKind.ROUTER, confirmed=5.078125, reasons=["start"]))
    assert router == "router: canary weight set to 5.1% (start)"
    assert describe(_event(EventKind.WAITING, until=1.0, reason="step pause")) is None
    failed = describe(_event(EventKind.ANALYSIS, error="connection refused"))
    assert failed is not None and "metrics unavailable" in failed


def test_percent_rounds_router_resolution() -> None:
    assert percent(39.84375) == "39.8%" and percent(100.0) == "100%" and percent(None) == "—"


def test_plain_view_prints_timestamped_lines_and_a_traffic_heartbeat() -> None:
    out = io.StringIO()
    view = PlainView(out, started=100.0)
    view.event(ANALYSIS)
    view.event(_event(EventKind.WAITING))
    view.traffic(Traffic(111.0, 5.0, 285, 15, 3000, 0.001))
    view.traffic(Traffic(112.0, 5.0, 285, 15, 3300, 0.001))  # within 10 s: not repeated
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("[  10.0s] analysis at 5%")
    assert "285 rps stable, 15 rps canary" in lines[1]


def test_live_view_renders_weight_p99s_and_decisions() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, width=100, force_terminal=False)
    view = LiveView(title="demo", setup="embedded", console=console, started=100.0)
    view.event(_event(EventKind.ROUTER, weight=20.0, confirmed=20.0))
    view.event(ANALYSIS)
    view.traffic(Traffic(111.0, 20.0, 240, 60, 3000, 0.001))
    console.print(view._render())
    view.close()
    text = buffer.getvalue()
    assert "weight  20.0%" in text
    assert "75.0 ms" in text and "+25.0%" in text and "60 rps" in text
    assert "router: canary weight set to 20%" in text
