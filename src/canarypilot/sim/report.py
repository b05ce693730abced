"""Reading a bench report: the issue's targets, checked, and the tables people read.

The targets are the ones canarypilot promised on the built-in suite: at most
1 % false rollbacks (the article claims 4 %), every regression detected, a
median time to detect of at most 60 s, at most a quarter of the static
ladder's bad requests, and healthy versions promoted no slower than the static
ladder. They are checked, never assumed: a missed target is printed as missed.
"""

from __future__ import annotations

import io
from typing import Any

PRODUCT = "canarypilot"
BASELINE = "static"


def check_targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with the measured value and whether it was met (``None``: not measurable)."""
    summary = report["summary"]
    mine = summary.get(PRODUCT)
    if mine is None:
        return []
    base = summary.get(BASELINE)
    out: list[dict[str, Any]] = []

    def add(name: str, value: Any, goal: str, met: bool | None) -> None:
        out.append({"target": name, "value": value, "goal": goal, "met": met})

    rate = mine["false_rollback_rate"]
    add("false rollback rate", rate, "<= 1% (article: 4%)", None if rate is None else rate <= 0.01)
    missed = [
        family
        for family, row in report["families"].items()
        if row["expect"] == "rollback" and (row[PRODUCT]["detection_rate"] or 0) < 1
    ]
    detection = mine["detection_rate"]
    add(
        "every regression detected",
        detection,
        "100% of bad runs" + (f" (missed in: {', '.join(missed)})" if missed else ""),
        None if detection is None else not missed,
    )
    ttd = mine["ttd_median_seconds"]
    add("median time to detect", ttd, "<= 60 s", None if ttd is None else ttd <= 60)
    if base is not None and base["bad_requests_total"]:
        ratio = mine["bad_requests_total"] / base["bad_requests_total"]
        add("bad requests vs static", round(ratio, 3), "<= 25% of static's", ratio <= 0.25)
    if base is not None:
        mine_p, base_p = mine["promote_median_seconds"], base["promote_median_seconds"]
        met = None if mine_p is None or base_p is None else mine_p <= base_p
        add("healthy promotion time", mine_p, f"<= static's ({base_p} s)", met)
    return out


def _fmt(value: Any, kind: str = "") -> str:
    if value is None:
        return "—"
    if kind == "pct":
        return f"{value:.1%}"
    if kind == "s":
        return f"{value:g} s"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


_ROWS = (
    ("false rollback rate", "false_rollback_rate", "pct"),
    ("false rollbacks / healthy runs", None, ""),
    ("detection rate", "detection_rate", "pct"),
    ("time to detect, median", "ttd_median_seconds", "s"),
    ("time to detect, p90", "ttd_p90_seconds", "s"),
    ("time to restore, median", "time_to_restore_median_seconds", "s"),
    ("bad requests served (total)", "bad_requests_total", ""),
    ("bad requests per bad run", "bad_requests_mean", ""),
    ("time to promote healthy, median", "promote_median_seconds", "s"),
    ("time to promote healthy, p90", "promote_p90_seconds", "s"),
)


def render_table(report: dict[str, Any], *, width: int = 120) -> str:
    """The summary, the per-family breakdown and the targets as text tables."""
    from rich.console import Console
    from rich.table import Table

    buffer = io.StringIO()
    console = Console(file=buffer, width=width, force_terminal=False, color_system=None)
    strategies = report["strategies"]
    summary = Table(title="strategies on the suite", title_justify="left")
    summary.add_column("")
    for name in strategies:
        summary.add_column(name, justify="right")
    for label, key, kind in _ROWS:
        if key is None:
            cells = [
                f"{summary_row['false_rollbacks']}/{summary_row['healthy_runs']}"
                for summary_row in (report["summary"][n] for n in strategies)
            ]
        else:
            cells = [_fmt(report["summary"][n][key], kind) for n in strategies]
        summary.add_row(label, *cells)
    console.print(summary)

    fam = Table(title="per family: rolled back / runs, median detect or promote time", title_justify="left")
    fam.add_column("family")
    fam.add_column("expect")
    for name in strategies:
        fam.add_column(name, justify="right")
    for family, row in report["families"].items():
        cells = []
        for name in strategies:
            s = row[name]
            rolled = s["detected"] if row["expect"] == "rollback" else s["false_rollbacks"]
            if row["expect"] == "either":
                rolled = round((s["rollback_rate"] or 0) * s["runs"])
            when = s["ttd_median_seconds"] if row["expect"] == "rollback" else s["promote_median_seconds"]
            cells.append(f"{rolled}/{s['runs']}  {_fmt(when, 's')}")
        fam.add_row(family, row["expect"], *cells)
    console.print(fam)

    targets = report.get("targets") or []
    if targets:
        tab = Table(title=f"targets for {PRODUCT}", title_justify="left")
        for col in ("target", "measured", "goal", "met"):
            tab.add_column(col)
        for t in targets:
            kind = "pct" if any(w in t["target"] for w in ("rate", "detected", "vs static")) else ""
            met = {True: "yes", False: "NO", None: "n/a"}[t["met"]]
            tab.add_row(t["target"], _fmt(t["value"], kind), t["goal"], met)
        console.print(tab)
    speed = report["speed"]
    console.print(
        f"{speed['runs']} runs, {speed['simulated_rollout_minutes']:,} simulated rollout-minutes in "
        f"{speed['wall_seconds']:.1f} s ({speed['simulated_minutes_per_second']} per second, "
        f"{report['jobs']} job(s))"
    )
    return buffer.getvalue()
