"""`canarypilot preflight PATH...`: lint manifests for the canary pitfalls before they reach a cluster.

Exit codes: 0 clean (notes and, without --strict, warnings allowed), 1 errors
found (or warnings with --strict), 2 usage error (unreadable path, invalid YAML,
bad flag).
"""

from __future__ import annotations

from enum import StrEnum

import typer

from canarypilot.cli.common import EXIT_USAGE, friendly_errors, settings_from

EXIT_CLEAN = 0
EXIT_FINDINGS = 1


class Format(StrEnum):
    text = "text"
    json = "json"
    sarif = "sarif"


def register(app: typer.Typer) -> None:
    """Add ``preflight`` to the main app."""
    app.command(
        "preflight",
        help=(
            "Check Kubernetes and Argo Rollouts manifests (files, directories, - for stdin; multi-document "
            "YAML) for the canary pitfalls: drain vs grace period, retries, readiness, autoscalers, "
            "database pool arithmetic, scrape interval vs rate window, analyses that can never fail, "
            "invalid setWeight, pruned fields, memory headroom. Rules and fixes: docs/preflight.md. "
            "Exit codes: 0 clean, 1 errors found (or warnings with --strict), 2 usage error."
        ),
    )(preflight)


def preflight(
    paths: list[str] = typer.Argument(
        ..., help="Manifest files or directories; - reads stdin.", show_default=False
    ),
    output: Format = typer.Option(Format.text, "--format", "-f", help="Output format."),
    strict: bool = typer.Option(False, "--strict", help="Fail (exit 1) on warnings too."),
    db_max_connections: int | None = typer.Option(
        None, "--db-max-connections", min=1, help="The database's max_connections (CP401)."
    ),
    drain_timeout: str | None = typer.Option(
        None, "--drain-timeout", help="Ingress drain/read timeout, e.g. 60s (CP101) [ingress-nginx: 60s]."
    ),
    scrape_interval: str | None = typer.Option(
        None, "--scrape-interval", help="Prometheus scrape interval, e.g. 30s (CP501)."
    ),
    window: str | None = typer.Option(
        None, "--window", help="Rate window of the analysis [query.window: 5m]."
    ),
    skip: list[str] = typer.Option([], "--skip", help="Rule ID to skip (repeatable), e.g. --skip CP202."),
    config: str | None = typer.Option(None, "--config", "-c", help="YAML settings file."),
    explain: bool = typer.Option(
        True, "--explain/--no-explain", help="Print why and fix under each rule (text)."
    ),
) -> None:
    from canarypilot import __version__
    from canarypilot.preflight import RULES, Options, check, failed, load_paths, report

    with friendly_errors():
        from canarypilot._exceptions import ConfigError

        unknown = sorted(set(skip) - set(RULES))
        if unknown:
            raise ConfigError(
                f"--skip: unknown rule(s) {', '.join(unknown)}; known: {', '.join(sorted(RULES))}"
            )
        settings = settings_from(config, {"query": {"window": window}})
        options = Options(
            drain_timeout_seconds=_duration("--drain-timeout", drain_timeout),
            db_max_connections=db_max_connections,
            scrape_interval_seconds=_duration("--scrape-interval", scrape_interval),
            rate_window_seconds=settings.query.window_seconds,
            analyzer_timeout_seconds=settings.prometheus.timeout_seconds,
        )
        manifests = load_paths(paths)
        findings = check(manifests, options, skip=skip)
    files = len({m.source for m in manifests})
    if output is Format.json:
        typer.echo(report.as_json(findings, files), nl=False)
    elif output is Format.sarif:
        typer.echo(report.sarif(findings, version=__version__), nl=False)
    else:
        typer.echo(report.text(findings, files, explain=explain), nl=False)
    raise typer.Exit(EXIT_FINDINGS if failed(findings, strict=strict) else EXIT_CLEAN)


def _duration(flag: str, value: str | None) -> float | None:
    if value is None:
        return None
    from canarypilot.preflight.workloads import seconds

    parsed = seconds(value)
    if parsed is None or parsed <= 0:
        from canarypilot.cli.common import fail

        fail(f"{flag}: {value!r} is not a duration like 30s or 1m", EXIT_USAGE)
    return parsed
