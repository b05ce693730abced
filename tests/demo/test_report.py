"""The report: an HTML page and PNG charts drawn from the controller's events."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from canarypilot.demo.live import Traffic
from canarypilot.demo.report import RunRecord, write_report
from canarypilot.policy import SLOPolicy
from canarypilot.rollout.events import EventKind, Phase, RolloutEvent

T0 = 1_800_000_000.0


def _event(seq: int, at: float, kind: EventKind, weight: float, **data: Any) -> RolloutEvent:
    return RolloutEvent(seq, T0 + at, "demo", kind, Phase.PROGRESSING, 0, weight, data)


def _analysis(seq: int, at: float, weight: float, p99: float, err: float) -> RolloutEvent:
    return _event(
        seq,
        at,
        EventKind.ANALYSIS,
        weight,
        latency_delta=(p99 - 0.06) / 0.06,
        error_delta=err - 0.001,
        stable={"p99_seconds": 0.06, "error_rate": 0.001},
        canary={"p99_seconds": p99, "error_rate": err},
        window_seconds=8,
    )


def _record(events: list[RolloutEvent], **kw: Any) -> RunRecord:
    values: dict[str, Any] = {
        "scenario": "latency-regression",
        "summary": "slow canary",
        "expected": "rolled_back",
        "outcome": "rolled_back",
        "ok": True,
        "headline": "PASS latency-regression",
        "started": T0,
        "finished": T0 + 30,
        "setup": {"router": "embedded proxy"},
        "slo": SLOPolicy(),  # type: ignore[call-arg]
        "events": events,
        "traffic": [Traffic(T0 + t, 5, 285, 15, 300 * t, 0.001) for t in range(1, 30)],
    }
    values.update(kw)
    return RunRecord(**values)


EVENTS = [
    _event(1, 1, EventKind.ROUTER, 5, confirmed=5.0),
    _analysis(2, 10, 5, 0.075, 0.001),
    _event(3, 10, EventKind.VERDICT, 5, action="hold", reasons=["p99 +25%", "violation 1 of 2: holding"]),
    _analysis(4, 15, 5, 0.076, 0.001),
    _event(5, 15, EventKind.VERDICT, 5, action="rollback", reasons=["2 violations in a row: rolling back"]),
    _event(6, 15, EventKind.ROUTER, 0, confirmed=0.0),
]


def test_the_report_pairs_each_analysis_with_its_verdict(tmp_path: Path) -> None:
    rows = _record(EVENTS).rows()
    assert [(r.at - T0, r.weight, r.action) for r in rows] == [(10, 5, "hold"), (15, 5, "rollback")]
    assert rows[1].reason == "2 violations in a row: rolling back"
    assert _record(EVENTS).weights() == [(T0, 0.0), (T0 + 1, 5.0), (T0 + 15, 0.0)]


def test_it_writes_html_with_both_charts_and_the_decisions(tmp_path: Path) -> None:
    files = write_report(_record(EVENTS), tmp_path / "out" / "report.html")
    page, weight_png, deltas_png = files
    html = page.read_text()
    for png in (weight_png, deltas_png):
        assert png.read_bytes().startswith(b"\x89PNG")
        assert png.stat().st_size > 10_000
        assert f'src="{png.name}"' in html
    assert "PASS latency-regression" in html
    assert "2 violations in a row: rolling back" in html
    assert html.count("<tr>") >= 3  # header + two decisions
    assert "+25.0%" in html and "75.0 ms" in html


def test_text_from_events_is_escaped(tmp_path: Path) -> None:
    hostile = [
        *EVENTS[:2],
        _event(3, 10, EventKind.VERDICT, 5, action="hold", reasons=["<script>x</script>"]),
    ]
    page = write_report(_record(hostile), tmp_path / "r.html")[0].read_text()
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_a_run_stopped_before_any_analysis_still_gets_a_report(tmp_path: Path) -> None:
    files = write_report(_record([], outcome="timed_out", ok=False, traffic=[]), tmp_path / "r.html")
    assert all(f.exists() for f in files)
    assert "timed_out" in files[0].read_text()
