"""The demo's report: one HTML page with PNG charts, written when a run ends.

It answers, after the fact, what the live view showed: how the weight moved,
how far the canary's p99 and error rate were from the thresholds at each
analysis, and what was decided and why. Charts are drawn with matplotlib's Agg
renderer on ``Figure`` objects (no pyplot, no display, no global state).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from canarypilot.demo.live import Traffic, percent
from canarypilot.policy import SLOPolicy
from canarypilot.rollout.events import EventKind, RolloutEvent

_COLOURS = {"proceed": "#2e7d32", "hold": "#ef8f00", "rollback": "#c62828"}


@dataclass(frozen=True, slots=True)
class Row:
    """One analysis and the breaker's verdict on it."""

    at: float
    weight: float
    analysis: dict[str, Any]
    action: str
    reason: str


@dataclass(frozen=True)
class RunRecord:
    """Everything a report is drawn from."""

    scenario: str
    summary: str
    expected: str
    outcome: str
    ok: bool
    headline: str
    started: float
    finished: float
    setup: dict[str, str]
    slo: SLOPolicy
    events: Sequence[RolloutEvent] = ()
    traffic: Sequence[Traffic] = ()
    reasons: Sequence[str] = field(default_factory=tuple)

    def rows(self) -> list[Row]:
        rows: list[Row] = []
        analysis: RolloutEvent | None = None
        for event in self.events:
            if event.kind is EventKind.ANALYSIS:
                analysis = event
            elif event.kind is EventKind.VERDICT and analysis is not None:
                reasons = event.data.get("reasons") or [""]
                rows.append(
                    Row(
                        analysis.at,
                        analysis.weight,
                        analysis.data,
                        str(event.data.get("action")),
                        reasons[-1],
                    )
                )
                analysis = None
        return rows

    def weights(self) -> list[tuple[float, float]]:
        """(time, weight) at the start and after each confirmed router change."""
        points = [(self.started, 0.0)]
        for event in self.events:
            if event.kind is EventKind.ROUTER:
                points.append((event.at, float(event.data.get("confirmed", event.weight))))
        return points


def write_report(record: RunRecord, path: Path) -> list[Path]:
    """Write the HTML page at ``path`` and its charts beside it; return every file written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    stem = path.with_suffix("")
    weight_png = stem.parent / f"{stem.name}-weight.png"
    deltas_png = stem.parent / f"{stem.name}-deltas.png"
    _weight_chart(record, weight_png)
    _deltas_chart(record, deltas_png)
    path.write_text(_html(record, weight_png.name, deltas_png.name), encoding="utf-8")
    return [path, weight_png, deltas_png]


def _figure(rows: int) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(9, 2.2 + 2.3 * rows), dpi=100, layout="constrained")


def _weight_chart(record: RunRecord, out: Path) -> None:
    fig = _figure(1)
    ax = fig.subplots()
    points = record.weights()
    xs = [t - record.started for t, _ in points] + [record.finished - record.started]
    ys = [w for _, w in points] + [points[-1][1]]
    ax.step(xs, ys, where="post", color="#1565c0", linewidth=2, label="canary weight (router)")
    if record.traffic:
        share = [
            (s.at - record.started, 100 * s.canary_rps / max(1e-9, s.stable_rps + s.canary_rps))
            for s in record.traffic
            if s.stable_rps + s.canary_rps > 0
        ]
        ax.plot(
            [x for x, _ in share],
            [y for _, y in share],
            color="#90caf9",
            linewidth=1,
            label="canary share of traffic",
        )
    for action, colour in _COLOURS.items():
        hits = [(r.at - record.started, r.weight) for r in record.rows() if r.action == action]
        if hits:
            ax.scatter([x for x, _ in hits], [y for _, y in hits], color=colour, zorder=3, label=action)
    ax.set_ylim(-3, 105)
    ax.set_xlabel("seconds since start")
    ax.set_ylabel("canary weight (%)")
    ax.set_title(f"{record.scenario}: weight over time — {record.outcome}")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize="small")
    fig.savefig(out)


def _deltas_chart(record: RunRecord, out: Path) -> None:
    fig = _figure(2)
    lat_ax, err_ax = fig.subplots(2, 1, sharex=True)
    all_rows = record.rows()
    slo = record.slo
    for ax, key, scale, limit, label in (
        (lat_ax, "latency_delta", 100.0, slo.max_latency_delta, "p99 latency delta (%)"),
        (err_ax, "error_delta", 100.0, slo.max_error_delta, "error rate delta (points)"),
    ):
        ax.axhline(limit * scale, color="#c62828", linestyle="--", linewidth=1, label="threshold")
        ax.axhline(
            limit * scale * slo.severe_factor, color="#c62828", linestyle=":", linewidth=1, label="severe"
        )
        ax.axhline(0, color="#555555", linewidth=0.5)
        # Each signal's own analyses: one may be unmeasured while the other is (no histogram
        # from a canary that only errs).
        rows = [r for r in all_rows if r.analysis.get(key) is not None]
        xs = [r.at - record.started for r in rows]
        ys = [float(r.analysis[key]) * scale for r in rows]
        ax.plot(xs, ys, color="#555555", linewidth=1)
        for action, colour in _COLOURS.items():
            pts = [(x, y) for x, y, r in zip(xs, ys, rows, strict=True) if r.action == action]
            if pts:
                ax.scatter([x for x, _ in pts], [y for _, y in pts], color=colour, zorder=3, label=action)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", fontsize="small")
    lat_ax.set_title("canary minus stable at each analysis, against the SLO thresholds")
    err_ax.set_xlabel("seconds since start")
    err_ax.set_xlim(0, max(1.0, record.finished - record.started))
    fig.savefig(out)


def _fmt(value: Any, kind: str) -> str:
    if value is None:
        return "—"
    return {
        "ms": f"{value * 1000:.1f} ms",
        "pct": f"{value:.2%}",
        "delta": f"{value:+.1%}",
        "pts": f"{value * 100:+.2f}",
    }[kind]


def _html(record: RunRecord, weight_png: str, deltas_png: str) -> str:
    e = html.escape
    colour = "#2e7d32" if record.ok else "#c62828"
    setup = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in record.setup.items())
    rows = []
    for r in record.rows():
        a = r.analysis
        stable, canary = a.get("stable") or {}, a.get("canary") or {}
        cells = [
            f"{r.at - record.started:.1f}s",
            percent(r.weight),
            _fmt(stable.get("p99_seconds"), "ms"),
            _fmt(canary.get("p99_seconds"), "ms"),
            _fmt(a.get("latency_delta"), "delta"),
            _fmt(stable.get("error_rate"), "pct"),
            _fmt(canary.get("error_rate"), "pct"),
            _fmt(a.get("error_delta"), "pts"),
        ]
        tds = "".join(f"<td>{e(c)}</td>" for c in cells)
        action = f'<td style="color:{_COLOURS.get(r.action, "#000")}"><b>{e(r.action)}</b></td>'
        rows.append(f"<tr>{tds}{action}<td class=why>{e(r.reason)}</td></tr>")
    reasons = "".join(f"<li>{e(x)}</li>" for x in record.reasons)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>canarypilot demo: {e(record.scenario)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 72rem; color: #222; }}
table {{ border-collapse: collapse; margin: 1rem 0; font-size: 0.9rem; }}
th, td {{ border-bottom: 1px solid #ddd; padding: 0.3rem 0.6rem; text-align: right; }}
th {{ background: #f4f4f4; }} td.why {{ text-align: left; }} .setup th, .setup td {{ text-align: left; }}
img {{ max-width: 100%; }}
</style></head><body>
<h1>canarypilot demo: {e(record.scenario)}</h1>
<p style="font-size:1.2rem;color:{colour}"><b>{e(record.headline)}</b></p>
<p>{e(record.summary)}. Expected outcome: <b>{e(record.expected)}</b>; got <b>{e(record.outcome)}</b>.</p>
<ul>{reasons}</ul>
<table class="setup">{setup}</table>
<h2>Weight over time</h2><img src="{e(weight_png)}" alt="canary weight over time">
<h2>Deltas against thresholds</h2><img src="{e(deltas_png)}" alt="latency and error deltas">
<h2>Decisions</h2>
<table><tr><th>t</th><th>weight</th><th>p99 stable</th><th>p99 canary</th><th>p99 delta</th>
<th>errors stable</th><th>errors canary</th><th>error delta (pts)</th><th>verdict</th><th>why</th></tr>
{"".join(rows)}</table>
<p>The full audit log of this run is <code>audit.jsonl</code> in the run directory.</p>
</body></html>
"""
