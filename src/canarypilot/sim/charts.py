"""PNG charts of a bench report, for the docs and for reviewing a policy change.

Four pictures, one question each: how often does each strategy get the verdict
wrong; how long does it take to notice a bad canary; how many bad requests do
users get meanwhile; how long does a good release take. matplotlib runs with
the non-interactive Agg backend, so this works on a server without a display.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

_COLOURS = {
    "static": "#9e9e9e",
    "flagger": "#1f77b4",
    "canarypilot": "#e6550d",
    "argo": "#fdae6b",
    "oracle": "#31a354",
}


def write_charts(report: dict[str, Any], directory: str | Path) -> list[Path]:
    """Write the charts into ``directory`` (created if missing); returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    strategies: list[str] = report["strategies"]
    colours = [_COLOURS.get(s, "#555555") for s in strategies]
    written: list[Path] = []

    def save(fig: Any, name: str) -> None:
        path = out / name
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    # 1. Verdicts: false rollbacks and detections.
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, key, title in (
        (axes[0], "false_rollback_rate", "false rollbacks (healthy versions)"),
        (axes[1], "detection_rate", "detection (bad versions)"),
    ):
        values = [100 * (report["summary"][s][key] or 0) for s in strategies]
        bars = ax.bar(strategies, values, color=colours)
        ax.bar_label(bars, fmt="%.1f%%")
        ax.set_title(title)
        ax.set_ylabel("% of runs")
        ax.set_ylim(0, 110)
    save(fig, "verdicts.png")

    # 2. Time to detect, per strategy (box plot of every detected run).
    fig, ax = plt.subplots(figsize=(7, 3.8))
    ttd = [
        [
            r["time_to_detect"]
            for r in report["runs"]
            if r["strategy"] == s and r["time_to_detect"] is not None
        ]
        for s in strategies
    ]
    ax.boxplot([values or [0.0] for values in ttd], tick_labels=strategies, whis=(10, 90))
    ax.set_ylabel("seconds from regression onset to rollback decision")
    ax.set_title("time to detect (whiskers: p10-p90)")
    save(fig, "time_to_detect.png")

    # 3 and 4: per family, grouped bars.
    families = report["families"]
    for name, expect, key, ylabel, title in (
        ("bad_requests.png", "rollback", "bad_requests_mean", "bad requests per run", "bad requests served"),
        ("time_to_promote.png", "promote", "promote_median_seconds", "seconds (median)", "time to promote"),
    ):
        rows = [f for f, row in families.items() if row["expect"] == expect]
        if not rows:
            continue
        fig, ax = plt.subplots(figsize=(max(7.0, 1.2 * len(rows)), 4.2))
        width = 0.8 / len(strategies)
        for i, strategy in enumerate(strategies):
            xs = [j + i * width for j in range(len(rows))]
            ys = [families[f][strategy][key] or 0 for f in rows]
            ax.bar(xs, ys, width, label=strategy, color=colours[i])
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(rows))])
        ax.set_xticklabels(rows, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend()
        save(fig, name)
    return written
