"""`canarypilot replay`: what a policy would have done on a service's past releases."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer

from canarypilot.cli.common import friendly_errors, run_async, settings_from


class Format(StrEnum):
    table = "table"
    json = "json"
    html = "html"


def register(app: typer.Typer) -> None:
    app.command(
        "replay",
        help=(
            "What a policy would have done on a service's past releases, from Prometheus history. "
            "At every analysis interval, the verdict each policy would have given on exactly the data "
            "scraped by then, and when it would first have held or rolled back. Several --config "
            "files are compared side by side ('default' is the built-in policy). Exit codes: "
            "0 replayed, 2 usage error or no data, 1 Prometheus unreachable or failing."
        ),
    )(replay)


def replay(
    service: str = typer.Option(..., "--service", "-s", help="Service name (the job label)."),
    start: str = typer.Option(..., "--from", help="Start of the history: Unix seconds or ISO 8601 (UTC)."),
    end: str = typer.Option(..., "--to", help="End of the history: Unix seconds or ISO 8601 (UTC)."),
    prometheus: str | None = typer.Option(None, "--prometheus", "-p", help="Prometheus base URL."),
    canary_version: str | None = typer.Option(None, help="Version label of the canary (default v2-canary)."),
    stable_version: str | None = typer.Option(None, help="Version label of stable (default v1-stable)."),
    config: list[str] | None = typer.Option(
        None, "--config", "-c", help="Policy YAML, repeatable; 'default' for the built-in policy."
    ),
    interval: float | None = typer.Option(
        None, help="Seconds between analyses (default rollout.analysis_interval_seconds, 15)."
    ),
    lag: float | None = typer.Option(
        None,
        help="Seconds a slice must have ended before it counts (default rollout.scrape_lag_seconds, 15).",
    ),
    fmt: Format = typer.Option(Format.table, "--format", "-f", help="table, json or html."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Where --format html writes its page (default replay-SERVICE.html)."
    ),
    every: bool = typer.Option(False, "--every", help="Table: print every analysis, not only changes."),
) -> None:
    from canarypilot.cli.analyze import parse_instant

    overrides: dict[str, Any] = {
        "prometheus": {"url": prometheus},
        "query": {"canary_version": canary_version, "stable_version": stable_version},
    }
    with friendly_errors():
        t0 = parse_instant(start, flag="--from")
        t1 = parse_instant(end, flag="--to")
        names = config or ["default"]
        policies = [(name, settings_from(None if name == "default" else name, overrides)) for name in names]
        result = run_async(lambda: _replay(policies, service, t0, t1, interval, lag))
    walker, found, replays, queries = result
    if fmt is Format.json:
        from canarypilot.replay.summary import to_json

        typer.echo(json.dumps(to_json(walker, found, replays, queries), indent=2))
    elif fmt is Format.html:
        from canarypilot.replay.render import write_html

        path = output or Path(f"replay-{service.replace('/', '_')}.html")
        written = write_html(walker, found, replays, path)
        typer.echo(f"report: {written[0]} ({len(written) - 1} more files beside it)")
    else:
        from canarypilot.replay.render import print_table

        print_table(walker, found, replays, every=every)
        typer.echo(f"{queries} queries to {walker.target.service}'s Prometheus")


async def _replay(
    policies: list[tuple[str, Any]],
    service: str,
    t0: float | None,
    t1: float | None,
    interval: float | None,
    lag: float | None,
) -> Any:
    from dataclasses import replace

    from canarypilot.metrics.history import Slicing
    from canarypilot.metrics.prometheus import PrometheusMetrics
    from canarypilot.model import Target
    from canarypilot.replay.fetch import fetch_slices
    from canarypilot.replay.summary import releases, replay_policy
    from canarypilot.replay.walk import Walker

    assert t0 is not None and t1 is not None
    first = policies[0][1]
    target = Target(service, first.query.canary_version, first.query.stable_version)
    slicing = Slicing.from_settings(first)
    if lag is not None:
        slicing = replace(slicing, lag_seconds=lag)
    async with PrometheusMetrics(first.prometheus, first.query) as provider:
        fetched = await fetch_slices(provider, target, start=t0, end=t1, slicing=slicing)
    walker = Walker(
        fetched.history,
        fetched.slicing,
        interval=first.rollout.analysis_interval_seconds if interval is None else interval,
    )
    found = releases(walker)
    replays = [replay_policy(walker, name, settings) for name, settings in policies]
    return walker, found, replays, fetched.queries
