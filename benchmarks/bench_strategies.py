"""Strategies on the built-in suite: static, Flagger, canarypilot, argo and the oracle.

``python -m benchmarks strategies [--seeds=N] [--seed-start=S] [--jobs=J] [--out=DIR]`` runs every
built-in scenario family over N seeds (default 40) with each strategy, prints
the comparison table with the targets, and the simulator's speed in simulated
rollout-minutes per second of wall time.
"""

from __future__ import annotations

import os


def option(argv: list[str], name: str, default: str | None) -> str | None:
    """The value of ``--name=VALUE`` in ``argv``, or ``default``."""
    for arg in argv:
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
    return default


def run(argv: list[str]) -> None:
    from canarypilot.sim.bench import builtin_suite, run_bench
    from canarypilot.sim.report import render_table

    seeds = int(option(argv, "seeds", "40") or 40)
    jobs = int(option(argv, "jobs", str(len(os.sched_getaffinity(0)))) or 1)
    start = int(option(argv, "seed-start", "0") or 0)
    report = run_bench(builtin_suite(), seeds=seeds, jobs=jobs, seed_start=start)
    report["suite"] = "builtin"
    table = render_table(report)
    print(table, end="")
    out = option(argv, "out", None)
    if out:
        import json
        from pathlib import Path

        from canarypilot.sim.charts import write_charts

        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "bench.json").write_text(json.dumps(report, indent=1) + "\n")
        (folder / "bench.txt").write_text(table)
        write_charts(report, folder)
        print(f"wrote {folder}/bench.json, bench.txt and charts")
