"""`canarypilot analyze`: one decision now, as JSON or a table.

From Prometheus when a URL is set; otherwise from the versions' own /metrics
pages (``--scrape`` or ``scrape.targets``), scraped here for one analysis window.
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from typing import Any

import typer

from canarypilot.cli.common import (
    EXIT_HOLD,
    EXIT_PROCEED,
    EXIT_ROLLBACK,
    fail,
    friendly_errors,
    run_async,
    settings_from,
)


class Format(StrEnum):
    json = "json"
    table = "table"


def register(app: typer.Typer) -> None:
    app.command(
        "analyze",
        help=(
            "Compare the canary with the stable version now and print one decision. "
            "Exit codes: 0 proceed, 3 hold, 4 rollback, 2 usage or configuration error, "
            "1 metrics backend unreachable or failing."
        ),
    )(analyze)


def analyze(
    service: str = typer.Option(..., "--service", "-s", help="Service name (the job label)."),
    prometheus: str | None = typer.Option(
        None,
        "--prometheus",
        "-p",
        help="Prometheus base URL (or prometheus.url in the config, or CANARYPILOT_PROMETHEUS__URL).",
    ),
    canary_version: str | None = typer.Option(None, help="Version label of the canary (default v2-canary)."),
    stable_version: str | None = typer.Option(
        None, help="Version label of the stable version (default v1-stable)."
    ),
    config: str | None = typer.Option(None, "--config", "-c", help="YAML settings file."),
    window: str | None = typer.Option(None, help="Rate window, a PromQL duration (default 5m)."),
    timeout: float | None = typer.Option(None, help="Per-query timeout in seconds (default 5)."),
    at: str | None = typer.Option(
        None,
        help="Evaluate at this instant instead of now: Unix seconds or ISO 8601 (UTC if no zone).",
    ),
    output: Format = typer.Option(Format.table, "--format", "-f", help="Output format."),
    scrape: list[str] | None = typer.Option(
        None,
        "--scrape",
        help=(
            "VERSION=HOST:PORT (or VERSION=URL) of a /metrics page, repeatable: without a Prometheus "
            "URL, scrape these for one --window and judge (replaces scrape.targets)."
        ),
    ),
    scrape_interval: float | None = typer.Option(
        None, "--scrape-interval", help="Seconds between scrapes (default 15; scrape.interval_seconds)."
    ),
) -> None:
    overrides: dict[str, Any] = {
        "prometheus": {"url": prometheus, "timeout_seconds": timeout},
        "query": {"window": window, "canary_version": canary_version, "stable_version": stable_version},
        "scrape": {"interval_seconds": scrape_interval},
    }
    with friendly_errors():
        if scrape:
            overrides["scrape"]["targets"] = parse_scrape_flags(scrape)
        settings = settings_from(config, overrides)
        if settings.prometheus.url:
            from canarypilot.api import analyze as run

            when = parse_instant(at)
            decision = run_async(lambda: run(service, settings=settings, at=when))
        elif settings.scrape.targets:
            if at is not None:
                fail("--at needs Prometheus: scraped metrics only exist from now on")
            decision = run_async(lambda: _scrape_and_judge(service, settings))
        else:
            from canarypilot._exceptions import ConfigError

            raise ConfigError(
                "no Prometheus URL and no scrape targets: pass --prometheus URL (or set prometheus.url), or "
                "--scrape VERSION=HOST:PORT per version (or set scrape.targets)"
            )
    if output is Format.json:
        typer.echo(json.dumps(decision.to_dict(), indent=2))
    else:
        _print_table(decision)
    raise typer.Exit(
        {"proceed": EXIT_PROCEED, "hold": EXIT_HOLD, "rollback": EXIT_ROLLBACK}[decision.status.value]
    )


def parse_scrape_flags(flags: list[str]) -> dict[str, list[str]]:
    """``--scrape VERSION=ADDRESS`` flags as ``scrape.targets``: addresses per version, in order."""
    from canarypilot._exceptions import ConfigError

    targets: dict[str, list[str]] = {}
    for flag in flags:
        version, sep, address = flag.partition("=")
        if not sep or not version.strip() or not address.strip():
            raise ConfigError(f"--scrape {flag!r}: expected VERSION=HOST:PORT, e.g. v2-canary=10.0.0.9:8080")
        targets.setdefault(version.strip(), []).append(address.strip())
    return targets


async def _scrape_and_judge(service: str, settings: Any) -> Any:
    """Scrape every target over one window, then judge what was seen (see scrape_window)."""
    from canarypilot.api import analyze as run
    from canarypilot.cli.scrape_window import scrape_window

    progress = sys.stderr.isatty()
    async with scrape_window(settings, service=service, progress=progress) as provider:
        return await run(service, settings=settings, provider=provider)


def parse_instant(text: str | None, *, flag: str = "--at") -> float | None:
    """``--at`` (or ``flag``): Unix seconds or an ISO 8601 date-time (naive means UTC)."""
    from datetime import UTC, datetime

    from canarypilot._exceptions import ConfigError

    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{flag} {text!r} is neither Unix seconds nor an ISO 8601 date-time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _print_table(decision: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    def ms(v: float | None) -> str:
        return "—" if v is None else f"{v * 1000:.1f} ms"

    def pct(v: float | None) -> str:
        return "—" if v is None else f"{v:.2%}"

    def num(v: float | None) -> str:
        return "—" if v is None else f"{v:,.0f}"

    colour = {"proceed": "green", "hold": "yellow", "rollback": "red"}[decision.status.value]
    console = Console()
    weight = "—" if decision.weight is None else f"{decision.weight:g}%"
    console.print(f"[bold {colour}]{decision.status.value.upper()}[/]  weight {weight}")
    table = Table(show_header=True, header_style="bold")
    table.add_column("")
    table.add_column(f"stable ({decision.stable.version})", justify="right")
    table.add_column(f"canary ({decision.canary.version})", justify="right")
    table.add_column("delta", justify="right")
    ld = "—" if decision.latency_delta is None else f"{decision.latency_delta:+.1%}"
    ed = "—" if decision.error_delta is None else f"{decision.error_delta * 100:+.2f} pts"
    table.add_row("p99 latency", ms(decision.stable.p99_seconds), ms(decision.canary.p99_seconds), ld)
    table.add_row("error rate", pct(decision.stable.error_rate), pct(decision.canary.error_rate), ed)
    table.add_row("requests", num(decision.stable.requests), num(decision.canary.requests), "")
    console.print(table)
    for reason in decision.reasons:
        console.print(f"  • {reason}")
