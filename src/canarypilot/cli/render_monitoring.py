"""`canarypilot render prometheus-rules | alerts | alertmanager | grafana`: the monitoring bundle.

Each command prints one file to stdout (or writes it with ``--output``); names,
labels and thresholds come from the settings (``--config``, environment), so a
custom configuration renders custom rules. Exit codes: 0 written, 2 bad input
(invalid settings, service name or output path).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import typer

from canarypilot.cli.common import friendly_errors, settings_from

_CONFIG = typer.Option(
    None, "--config", "-c", help="YAML settings file (query, slo, interpolation, monitoring)."
)
_OUTPUT = typer.Option(None, "--output", "-o", help="Write to this file instead of stdout.")
_INTERVAL = typer.Option(None, "--interval", help="Rule group evaluation interval (default: Prometheus').")


def register(app: typer.Typer) -> None:
    """Add the four monitoring commands to the render sub-app."""
    app.command(
        "prometheus-rules",
        help=(
            "Prometheus recording rules: per-version p99 and error ratio, canary latency and error "
            "deltas, and the clamped safe weight, named <namespace>:canary_latency_delta etc. "
            "Exit codes: 0 written, 2 bad input."
        ),
    )(prometheus_rules)
    app.command(
        "alerts",
        help=(
            "Prometheus alerting rules: CanaryWeightExceeded, CanarySLOViolation, CanaryAnalyzerDown, "
            "CanaryMetricsMissing, each with summary, description and runbook. Load them together with "
            "the recording rules. Exit codes: 0 written, 2 bad input."
        ),
    )(alerts)
    app.command(
        "alertmanager",
        help=(
            "An Alertmanager configuration: paging canary alerts to PagerDuty (placeholder key), "
            "the rest to a team receiver. Exit codes: 0 written, 2 bad input."
        ),
    )(alertmanager)
    app.command(
        "grafana",
        help=(
            "A Grafana dashboard (JSON model, templated by service): safe and applied weight, deltas "
            "against thresholds, p99 and error rate per version, decisions, SLO violations, "
            "connection pool. Exit codes: 0 written, 2 bad input."
        ),
    )(grafana)


def prometheus_rules(
    service: list[str] = typer.Option(
        [], "--service", "-s", help="Only these services (repeatable); default: every job with both versions."
    ),
    interval: str | None = _INTERVAL,
    config: str | None = _CONFIG,
    output: Path | None = _OUTPUT,
) -> None:
    def build() -> str:
        from canarypilot.render.monitoring import render_recording_rules

        return render_recording_rules(settings_from(config, {}), service, interval=_checked(interval))

    _emit(build, output)


def alerts(
    interval: str | None = _INTERVAL, config: str | None = _CONFIG, output: Path | None = _OUTPUT
) -> None:
    def build() -> str:
        from canarypilot.render.alerts import render_alert_rules

        return render_alert_rules(settings_from(config, {}), interval=_checked(interval))

    _emit(build, output)


def alertmanager(config: str | None = _CONFIG, output: Path | None = _OUTPUT) -> None:
    def build() -> str:
        from canarypilot.render.alerts import render_alertmanager

        return render_alertmanager(settings_from(config, {}))

    _emit(build, output)


def grafana(
    title: str | None = typer.Option(None, help="Dashboard title."),
    uid: str | None = typer.Option(None, help="Dashboard uid (stable across imports)."),
    config: str | None = _CONFIG,
    output: Path | None = _OUTPUT,
) -> None:
    def build() -> str:
        from canarypilot.model import validate_name
        from canarypilot.render.grafana import render_dashboard

        if uid is not None:
            validate_name(uid, what="dashboard uid")
        return render_dashboard(settings_from(config, {}), title=title, uid=uid)

    _emit(build, output)


def _checked(interval: str | None) -> str | None:
    if interval is not None:
        from canarypilot._exceptions import ConfigError
        from canarypilot.policy import parse_duration

        try:
            parse_duration(interval)
        except ValueError as exc:
            raise ConfigError(f"--interval: {exc}") from None
    return interval


def _emit(build: Callable[[], str], output: Path | None) -> None:
    with friendly_errors():
        text = build()
        if output is None:
            typer.echo(text, nl=False)
            return
        from canarypilot._exceptions import ConfigError

        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot write {output}: {exc.strerror or exc}") from exc
        typer.echo(f"wrote {output}", err=True)
