"""`canarypilot simulate` and `canarypilot bench`: rollouts in virtual time.

``simulate`` replays one scenario with one strategy and prints what happened,
second by second; ``bench`` runs a whole suite over many seeds and compares
the strategies. Both are deterministic for a given seed.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer

from canarypilot.cli.common import EXIT_BACKEND, friendly_errors, require_sim


class Format(StrEnum):
    table = "table"
    json = "json"


def register(app: typer.Typer) -> None:
    """Add ``simulate`` and ``bench`` to the main app."""
    app.command(
        "simulate",
        help=(
            "Replay one scenario (a YAML file, or the name of a built-in one) in virtual time "
            "and print the timeline and the outcome. Exit codes: 0 the simulation ran (whatever "
            "its outcome), 2 invalid scenario, option or settings file."
        ),
    )(simulate)
    app.command(
        "bench",
        help=(
            "Run every scenario of a suite over many seeds with each strategy (static, flagger, "
            "canarypilot) and compare false rollbacks, detection, time to detect and restore, bad "
            "requests served and time to promote. Exit codes: 0 done, 1 --check given and a "
            "target missed, 2 invalid suite, option or settings file."
        ),
    )(bench)


def _overrides(config: str | None) -> dict[str, Any]:
    """The settings file as a dict of overrides, validated first (the environment is ignored:
    a simulation must not change with the shell it runs in)."""
    if config is None:
        return {}
    import yaml

    from canarypilot.policy import load_settings

    load_settings(config, environ={})
    loaded = yaml.safe_load(Path(config).read_text(encoding="utf-8")) or {}
    return dict(loaded)


def _scenario(ref: str) -> Any:
    from canarypilot._exceptions import ConfigError
    from canarypilot.sim.bench import builtin_suite
    from canarypilot.sim.scenario import load_scenario

    path = Path(ref)
    if path.exists():
        return load_scenario(path)
    builtin = {s.name: s for s in builtin_suite()}
    if ref in builtin:
        return builtin[ref]
    raise ConfigError(f"no scenario file {ref!r}, and no built-in scenario of that name (try: healthy)")


def simulate(
    scenario: str = typer.Argument(..., help="Scenario YAML file, or a built-in scenario's name."),
    strategy: str = typer.Option("canarypilot", "--strategy", "-s", help="static, flagger or canarypilot."),
    seed: int = typer.Option(0, "--seed", min=0, help="Random seed; the same seed replays the same run."),
    config: str | None = typer.Option(
        None, "--config", "-c", help="canarypilot settings YAML (default: the default policy)."
    ),
    output: Format = typer.Option(Format.table, "--format", "-f", help="Output format."),
) -> None:
    require_sim("simulate")
    with friendly_errors():
        from canarypilot.sim.engine import default_settings
        from canarypilot.sim.engine import simulate as run
        from canarypilot.sim.strategies import make_strategy

        make_strategy(strategy)  # an unknown name is a usage error before anything runs
        loaded = _scenario(scenario)
        settings = default_settings(loaded).merged(_overrides(config))
        result = run(loaded, strategy, seed, settings=settings)
    if output is Format.json:
        typer.echo(json.dumps(result.to_dict(with_marks=True), indent=2))
        return
    typer.echo(f"scenario {loaded.name} ({loaded.expect}), strategy {strategy}, seed {seed}")
    for mark in result.marks:
        typer.echo(f"  t={mark.t:7.1f}s  {mark.kind.value:<9} {mark.weight:5.1f}%  {mark.text}")
    typer.echo(_summary(result))


def _summary(result: Any) -> str:
    def secs(value: float | None) -> str:
        return "—" if value is None else f"{value:g} s"

    lines = [
        f"outcome: {result.outcome.value}",
        f"  regression onset:  {secs(result.onset)}",
        f"  rollback decided:  {secs(result.rollback_at)}   time to detect: {secs(result.time_to_detect)}",
        f"  traffic restored:  {secs(result.restored_at)}   time to restore: {secs(result.time_to_restore)}",
        f"  promoted:          {secs(result.promoted_at)}",
        f"  canary requests:   {result.canary_requests:,}   bad requests from a bad canary: "
        f"{result.bad_requests:,}",
    ]
    return "\n".join(lines)


def bench(
    suite: str = typer.Option("builtin", "--suite", help="'builtin', or a directory of scenario YAML files."),
    seeds: int = typer.Option(
        40, "--seeds", "-n", min=1, max=10_000, help="Seeds per scenario and strategy."
    ),
    seed_start: int = typer.Option(
        0, "--seed-start", min=0, help="First seed (seeds run from here): report on held-out seeds."
    ),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, max=256, help="Worker processes."),
    output: Format = typer.Option(Format.table, "--format", "-f", help="Output format (stdout)."),
    out: str | None = typer.Option(
        None, "--out", "-o", help="Directory for bench.json (every run), bench.txt and the PNG charts."
    ),
    strategies: list[str] = typer.Option(
        ["static", "flagger", "canarypilot"], "--strategy", "-s", help="Strategies to run (repeatable)."
    ),
    config: str | None = typer.Option(
        None, "--config", "-c", help="canarypilot settings YAML to bench instead of the default policy."
    ),
    check: bool = typer.Option(False, "--check", help="Exit 1 when a target for canarypilot is missed."),
) -> None:
    require_sim("bench")
    with friendly_errors():
        from canarypilot.sim.bench import builtin_suite, load_suite, run_bench
        from canarypilot.sim.report import render_table

        scenarios = builtin_suite() if suite == "builtin" else load_suite(suite)
        report = run_bench(
            scenarios,
            strategies=strategies,
            seeds=seeds,
            jobs=jobs,
            overrides=_overrides(config),
            seed_start=seed_start,
        )
        report["suite"] = suite
        table = render_table(report)
        if out is not None:
            _write(report, table, Path(out))
    if output is Format.json:
        typer.echo(json.dumps({k: v for k, v in report.items() if k != "runs"}, indent=2))
    else:
        typer.echo(table, nl=False)
    if out is not None:
        typer.echo(f"wrote {out}/bench.json, bench.txt and charts", err=True)
    if check and any(t["met"] is False for t in report["targets"]):
        raise typer.Exit(EXIT_BACKEND)


def _write(report: dict[str, Any], table: str, folder: Path) -> None:
    from canarypilot._exceptions import ConfigError
    from canarypilot.sim.charts import write_charts

    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "bench.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
        (folder / "bench.txt").write_text(table, encoding="utf-8")
        write_charts(report, folder)
    except OSError as exc:
        raise ConfigError(f"cannot write to {folder}: {exc.strerror or exc}") from exc
