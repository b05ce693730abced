"""`canarypilot render …`: manifests and monitoring configuration, written to stdout or files."""

from __future__ import annotations

import typer

from canarypilot.cli import render_argo, render_monitoring


def register(app: typer.Typer) -> None:
    render_app = typer.Typer(
        name="render",
        help=(
            "Render deployable configuration: the Argo Rollout and AnalysisTemplate, "
            "Prometheus recording rules and alerts, Alertmanager routing, the Grafana dashboard."
        ),
        no_args_is_help=True,
    )
    render_argo.register(render_app)
    render_monitoring.register(render_app)
    app.add_typer(render_app)
