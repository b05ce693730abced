"""A replay for people: a table in the terminal, or an HTML page with the demo report's charts.

The table prints, per policy, the analyses where something changed (a new
step, a different verdict; ``every`` prints them all), then one summary line
per release and policy side by side. The HTML page holds the summary and links
one demo-style report per release and policy (weight over time with each
verdict, the deltas against the thresholds, every analysis and its reason).
"""

from __future__ import annotations

import html
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from canarypilot.replay.summary import PolicyReplay, Release
from canarypilot.replay.walk import Instant, Walker


def clock(ts: float | None) -> str:
    if ts is None:
        return "—"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def print_table(walker: Walker, found: list[Release], policies: list[PolicyReplay], *, every: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=160)
    console.print(
        f"[bold]{walker.target.service}[/] {walker.target.canary_version} vs {walker.target.stable_version}, "
        f"{clock(walker.start)} – {clock(walker.end)} UTC, slices of {walker.slicing.length:g}s: "
        f"{len(found)} release(s)"
    )
    colour = {"proceed": "green", "hold": "yellow", "rollback": "red"}
    for policy in policies:
        table = Table(title=f"policy {policy.config}", show_header=True, header_style="bold")
        for name in (
            "time (UTC)",
            "weight",
            "p99 stable",
            "p99 canary",
            "p99 Δ",
            "errors Δ",
            "verdict",
            "why",
        ):
            table.add_column(name, justify="left" if name in ("why", "verdict") else "right")
        previous: tuple[int, float, str] | None = None
        for i in policy.instants:
            key = (i.release, i.since, i.verdict.action.value)
            if not every and key == previous:
                continue
            previous = key
            d = i.verdict.decision
            action = i.verdict.action.value
            table.add_row(
                clock(i.at)[11:],
                _percent(i.weight),
                _ms(d.stable.p99_seconds),
                _ms(d.canary.p99_seconds),
                "—" if d.latency_delta is None else f"{d.latency_delta:+.1%}",
                "—" if d.error_delta is None else f"{d.error_delta * 100:+.2f}",
                f"[{colour[action]}]{action.upper()}[/]",
                _reason(i)[:90],
            )
        console.print(table)
    summary = Table(title="summary", show_header=True, header_style="bold")
    summary.add_column("release")
    summary.add_column("steps (recorded)")
    for policy in policies:
        summary.add_column(policy.config)
    for release in found:
        cells = [
            f"#{release.index} {clock(release.start)[11:]}–{clock(release.end)[11:]}",
            " → ".join(_percent(s.weight) for s in release.steps) + f" ({release.recorded_end})",
        ]
        for policy in policies:
            o = next(x for x in policy.outcomes if x.release == release.index)
            if o.first_rollback is not None:
                cells.append(
                    f"[red]ROLLBACK[/] at {clock(o.first_rollback)[11:]} "
                    f"(+{o.first_rollback - release.start:.0f}s), "
                    f"~{o.spared_bad_requests:,.0f} bad requests spared"
                )
            elif o.first_hold is not None:
                cells.append(f"let through; first hold at {clock(o.first_hold)[11:]}")
            else:
                cells.append("let through, never held")
        summary.add_row(*cells)
    console.print(summary)


def _percent(weight: float) -> str:
    """A weight, or a dash when no request was seen (a step inside a scrape gap)."""
    return "—" if math.isnan(weight) else f"{weight:g}%"


def _ms(v: float | None) -> str:
    return "—" if v is None else f"{v * 1000:.1f} ms"


def _reason(i: Instant) -> str:
    return (i.verdict.reasons or i.verdict.decision.reasons or ("",))[-1]


def write_html(walker: Walker, found: list[Release], policies: list[PolicyReplay], path: Path) -> list[Path]:
    """The summary page at ``path``, one demo-style report per release and policy beside it."""
    from canarypilot.demo.report import RunRecord, write_report

    path.parent.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    links: list[str] = []
    e = html.escape
    for p_index, policy in enumerate(policies):
        for release in found:
            outcome = next(o for o in policy.outcomes if o.release == release.index)
            record = RunRecord(
                scenario=f"{walker.target.service} release #{release.index} · policy {policy.config}",
                summary=f"replayed from {clock(release.start)} to {clock(release.end)} UTC",
                expected=f"recorded: {release.recorded_end}",
                outcome=outcome.verdict,
                ok=outcome.first_rollback is None,
                headline=_headline(outcome.first_rollback, outcome.spared_bad_requests, release.start),
                started=release.start,
                finished=release.end,
                setup={
                    "config": policy.config,
                    "steps": " → ".join(_percent(s.weight) for s in release.steps),
                },
                slo=policy.settings.slo,
                events=_events(walker, release, policy),
            )
            page = path.with_name(f"{path.stem}-{p_index}-{release.index}.html")
            written += write_report(record, page)
            links.append(
                f"<tr><td>#{release.index}</td><td>{e(policy.config)}</td><td>{e(outcome.verdict)}</td>"
                f"<td>{e(clock(outcome.first_rollback))}</td><td>{e(clock(outcome.first_hold))}</td>"
                f'<td><a href="{e(page.name)}">report</a></td></tr>'
            )
    service = walker.target.service
    path.write_text(
        f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>canarypilot replay: {e(service)}</title>
<style>body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; }}
td, th {{ padding: 0.3rem 0.6rem; border-bottom: 1px solid #ddd; }}</style></head><body>
<h1>canarypilot replay: {e(service)}</h1>
<p>{e(clock(walker.start))} – {e(clock(walker.end))} UTC, {len(found)} release(s),
slices of {walker.slicing.length:g}s.</p>
<table><tr><th>release</th><th>policy</th><th>verdict</th><th>first rollback</th><th>first hold</th>
<th></th></tr>
{"".join(links)}</table></body></html>
""",
        encoding="utf-8",
    )
    return [path, *written]


def _headline(rollback: float | None, spared: float | None, start: float) -> str:
    if rollback is None:
        return "this policy would have let the release through"
    return (
        f"this policy would have rolled back {rollback - start:.0f}s in, "
        f"sparing ~{spared or 0:,.0f} bad requests"
    )


def _events(walker: Walker, release: Release, policy: PolicyReplay) -> list[Any]:
    from canarypilot.rollout.events import EventKind, Phase, RolloutEvent

    name = walker.target.service
    events: list[RolloutEvent] = []

    def add(at: float, kind: EventKind, weight: float, data: dict[str, Any]) -> None:
        events.append(RolloutEvent(len(events), at, name, kind, Phase.PROGRESSING, 0, weight, data))

    steps = iter(release.steps)
    pending = next(steps, None)
    for i in (x for x in policy.instants if x.release == release.index):
        while pending is not None and pending.start <= i.at:
            add(pending.start, EventKind.ROUTER, pending.weight, {"confirmed": pending.weight})
            pending = next(steps, None)
        add(i.at, EventKind.ANALYSIS, i.weight, i.verdict.decision.to_dict())
        add(i.at, EventKind.VERDICT, i.weight, {"action": i.verdict.action.value, "reasons": [_reason(i)]})
    return events
