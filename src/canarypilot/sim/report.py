"""Reading a bench report: issue 10's targets, checked, and the tables people read.

The targets (checked for ``canarypilot``, and for ``argo`` where named), on every
family of the suite, as measured, never assumed — a missed one is printed as
missed:

* healthy canaries rolled back <= 1 %, and none left undecided;
* bad canaries rolled back at least as often as the better of static and
  flagger, on every family where any strategy sees the regression;
* bad requests served <= 0.5x static's;
* median time to detect <= 90 s (at 15 s scrapes) and, per family, within 2x
  the oracle's;
* healthy promotion median <= 1.25x static's;
* ``argo`` within 1.5x ``canarypilot``'s bad requests, with the same <= 1 %
  false-rollback bound.
"""

from __future__ import annotations

import io
import statistics
from typing import Any

PRODUCT = "canarypilot"
BASELINE = "static"
ORACLE = "oracle"
ARGO = "argo"


def _ratio(mine: float | None, base: float | None) -> float | None:
    # No base (or a base of zero) gives no ratio: JSON has no infinity, and 0/0 means nothing.
    if mine is None or not base:
        return None
    return round(mine / base, 3)


def ratios(row: dict[str, Any], strategy: str) -> dict[str, float | None]:
    """One family's numbers for ``strategy`` as ratios: bad requests and promotion to
    static's, time to detect to the oracle's (1.0 is the floor)."""
    mine = row[strategy]
    base = row.get(BASELINE)
    oracle = row.get(ORACLE)
    return {
        "bad_requests_vs_static": _ratio(mine["bad_requests_total"], base and base["bad_requests_total"]),
        "promote_vs_static": _ratio(mine["promote_median_seconds"], base and base["promote_median_seconds"]),
        "ttd_vs_oracle": _ratio(mine["ttd_median_seconds"], oracle and oracle["ttd_median_seconds"]),
        "bad_requests_vs_oracle": _ratio(mine["bad_requests_total"], oracle and oracle["bad_requests_total"]),
    }


def _ttd_at_15s_scrapes(report: dict[str, Any], strategy: str) -> float | None:
    """Median time to detect over the scenarios scraped every 15 s (the target's condition)."""
    at_15 = {s["name"] for s in report["scenarios"] if s.get("scrape_interval_seconds") == 15}
    times = [
        r["time_to_detect"]
        for r in report.get("runs", [])
        if r["strategy"] == strategy and r["scenario"] in at_15 and r["expect"] == "rollback"
        if r["time_to_detect"] is not None and r["outcome"] == "rolled_back"
    ]
    return round(statistics.median(times), 1) if times else None


def check_targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with the measured value and whether it was met (``None``: not measurable)."""
    summary, families = report["summary"], report["families"]
    mine = summary.get(PRODUCT)
    if mine is None:
        return []
    base = summary.get(BASELINE)
    out: list[dict[str, Any]] = []

    def add(name: str, value: Any, goal: str, met: bool | None) -> None:
        out.append({"target": name, "value": value, "goal": goal, "met": met})

    rate = mine["false_rollback_rate"]
    add("false rollback rate", rate, "<= 1%", None if rate is None else rate <= 0.01)
    undecided = mine["healthy_undecided"]
    add("healthy releases undecided", undecided, "none", undecided == 0)
    short: list[str] = []
    for family, row in families.items():
        if row["expect"] != "rollback":
            continue
        rivals = [row[s]["detection_rate"] or 0 for s in (BASELINE, "flagger") if s in row]
        seen = max([row[s]["detection_rate"] or 0 for s in row if s != "expect" and s != "ratios"], default=0)
        if seen > 0 and rivals and (row[PRODUCT]["detection_rate"] or 0) < max(rivals):
            short.append(family)
    detection = mine["detection_rate"]
    add(
        "bad canaries rolled back",
        detection,
        ">= best of static/flagger per family" + (f" (short in: {', '.join(short)})" if short else ""),
        None if detection is None else not short,
    )
    if base is not None:
        ratio = _ratio(mine["bad_requests_total"], base["bad_requests_total"])
        add("bad requests vs static", ratio, "<= 0.5x static's", None if ratio is None else ratio <= 0.5)
    ttd = mine["ttd_median_seconds"]
    fast = _ttd_at_15s_scrapes(report, PRODUCT)
    add("median time to detect (15 s scrapes)", fast, "<= 90 s", None if fast is None else fast <= 90)
    if ORACLE in summary:
        slow = [
            f
            for f, row in families.items()
            if (r := ratios(row, PRODUCT)["ttd_vs_oracle"]) is not None and r > 2
        ]
        add(
            "time to detect vs oracle",
            _ratio(ttd, summary[ORACLE]["ttd_median_seconds"]),
            "<= 2x the oracle's on each family" + (f" (over in: {', '.join(slow)})" if slow else ""),
            not slow,
        )
    if base is not None:
        promote = _ratio(mine["promote_median_seconds"], base["promote_median_seconds"])
        add(
            "healthy promotion vs static",
            promote,
            "<= 1.25x static's",
            None if promote is None else promote <= 1.25,
        )
    argo = summary.get(ARGO)
    if argo is not None:
        vs = _ratio(argo["bad_requests_total"], mine["bad_requests_total"])
        add("argo bad requests vs canarypilot", vs, "<= 1.5x", None if vs is None else vs <= 1.5)
        arate = argo["false_rollback_rate"]
        add("argo false rollback rate", arate, "<= 1%", None if arate is None else arate <= 0.01)
        add(
            "argo healthy releases undecided",
            argo["healthy_undecided"],
            "none",
            argo["healthy_undecided"] == 0,
        )
    return out


def _fmt(value: Any, kind: str = "") -> str:
    if value is None:
        return "—"
    if kind == "pct":
        return f"{value:.1%}"
    if kind == "s":
        return f"{value:g} s"
    if kind == "x":
        return f"{value:.2f}×"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


_ROWS = (
    ("false rollback rate", "false_rollback_rate", "pct"),
    ("false rollbacks / healthy runs", None, ""),
    ("healthy runs left undecided", "healthy_undecided", ""),
    ("detection rate", "detection_rate", "pct"),
    ("time to detect, median", "ttd_median_seconds", "s"),
    ("time to detect, p90", "ttd_p90_seconds", "s"),
    ("time to restore, median", "time_to_restore_median_seconds", "s"),
    ("bad requests served (total)", "bad_requests_total", ""),
    ("bad requests per bad run", "bad_requests_mean", ""),
    ("time to promote healthy, median", "promote_median_seconds", "s"),
    ("time to promote healthy, p90", "promote_p90_seconds", "s"),
)


def render_table(report: dict[str, Any], *, width: int = 150) -> str:
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

    for name in (PRODUCT, ARGO):
        if name in strategies:
            console.print(_family_detail(report, name))

    targets = report.get("targets") or []
    if targets:
        tab = Table(title=f"targets for {PRODUCT}", title_justify="left")
        for col in ("target", "measured", "goal", "met"):
            tab.add_column(col)
        for t in targets:
            kind = "pct" if any(w in t["target"] for w in ("rate", "rolled back")) else ""
            kind = "x" if " vs " in t["target"] else kind
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


def _family_detail(report: dict[str, Any], name: str) -> Any:
    """One strategy per family: verdicts, times, bad requests, and its ratios to static and oracle."""
    from rich.table import Table

    tab = Table(title=f"{name} per family, against static and the oracle", title_justify="left")
    tab.add_column("family", no_wrap=True, min_width=29)
    for col in ("rolled back (undecided)", "detect med / p90", "bad req (× static)", "detect × oracle"):
        tab.add_column(col, justify="right", no_wrap=True)
    tab.add_column("promote (× static)", justify="right", no_wrap=True)
    for family, row in report["families"].items():
        s = row[name]
        r = ratios(row, name)
        expect = row["expect"]
        if expect == "promote":
            verdict = f"{s['false_rollbacks']}/{s['runs']} ({s['healthy_undecided']})"
        elif expect == "rollback":
            verdict = f"{s['detected']}/{s['runs']}"
        else:
            verdict = f"{round((s['rollback_rate'] or 0) * s['runs'])}/{s['runs']}"
        bad = expect == "rollback"
        tab.add_row(
            family,
            verdict,
            f"{_fmt(s['ttd_median_seconds'], 's')} / {_fmt(s['ttd_p90_seconds'], 's')}" if bad else "",
            f"{_fmt(s['bad_requests_total'])} ({_fmt(r['bad_requests_vs_static'], 'x')})" if bad else "",
            _fmt(r["ttd_vs_oracle"], "x") if bad else "",
            f"{_fmt(s['promote_median_seconds'], 's')} ({_fmt(r['promote_vs_static'], 'x')})"
            if expect == "promote"
            else "",
        )
    return tab
