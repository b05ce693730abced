"""`canarypilot render argo`: a Rollout whose ladder of weights is gated by the analysis service.

Prints every object as one YAML stream (or writes one file per object with
``--output-dir``). Exit codes: 0 written, 2 bad input (invalid name, steps, URL,
settings or output directory).
"""

from __future__ import annotations

from pathlib import Path

import typer

from canarypilot._version import IMAGE
from canarypilot.cli.common import friendly_errors, settings_from
from canarypilot.render.argo import DEFAULT_OBSERVE_SECONDS

HELP = (
    "Argo Rollouts manifests: a Rollout (nginx traffic routing through a stable Ingress) that climbs "
    "a ladder of setWeight steps, each gated by an AnalysisTemplate asking the analysis service "
    "whether the safe weight covers it; the stable and canary Services and the Ingress; and the "
    "analyzer's own Deployment, Service and ServiceAccount. See docs/argo.md. "
    "Exit codes: 0 written, 2 bad input."
)


def register(app: typer.Typer) -> None:
    """Add `render argo` to the render sub-app."""
    app.command("argo", help=HELP)(argo)
    app.command("chart", help=CHART_HELP)(chart)


def argo(
    service: str = typer.Option(
        ..., "--service", "-s", help="Service name: the Rollout, its Services and job label."
    ),
    image: str = typer.Option(..., "--image", help="Container image of the service's new version."),
    namespace: str = typer.Option("default", "--namespace", "-n", help="Namespace of the Rollout."),
    analyzer_url: str | None = typer.Option(
        None,
        "--analyzer-url",
        help="Base URL of the analysis service (default: http://canarypilot-analyzer.NAMESPACE.svc:8080).",
    ),
    analyzer_namespace: str = typer.Option("canarypilot", help="Namespace of the analysis service."),
    analyzer_image: str = typer.Option(IMAGE, help="Container image of the analysis service."),
    prometheus_url: str = typer.Option(
        "http://prometheus.monitoring:9090",
        "--prometheus",
        help="Prometheus URL the analysis service queries.",
    ),
    steps: str = typer.Option(
        "5,10,20,35,50,75,100",
        help="The ladder of weights (percent, increasing); every rung after the first is gated.",
    ),
    observe: int = typer.Option(
        DEFAULT_OBSERVE_SECONDS,
        help="Seconds each rung is observed after the warm-up; the gate is asked every --interval "
        "of it, and one pass (with no fail) takes the rung when it ends.",
    ),
    interval: int = typer.Option(15, help="Seconds between SLO guard measurements."),
    warmup: int | None = typer.Option(
        None,
        help="Seconds after a weight change before its first measurement (default: breaker.warmup_seconds).",
    ),
    replicas: int = typer.Option(4, help="Replicas of the Rollout."),
    container_port: int = typer.Option(8080, help="Port the service's container listens on."),
    host: str | None = typer.Option(None, "--host", help="Host of the stable Ingress rule (none: any host)."),
    ingress_class: str = typer.Option("nginx", help="ingressClassName of the stable Ingress."),
    token_secret: str | None = typer.Option(
        None,
        help="Name of a Secret (key 'token') holding the analyzer's bearer token, in both namespaces.",
    ),
    cluster_gate: bool = typer.Option(
        False,
        "--cluster-gate",
        help="Write the gate as a ClusterAnalysisTemplate (shared by every namespace; clusterScope steps).",
    ),
    config: str | None = typer.Option(None, "--config", "-c", help="YAML settings file (breaker, query)."),
    output_dir: Path | None = typer.Option(
        None, "--output-dir", "-o", help="Write one file per object here instead of printing."
    ),
) -> None:
    with friendly_errors():
        from canarypilot._exceptions import ConfigError
        from canarypilot.render.argo import ArgoOptions, render_argo, to_yaml

        try:
            ladder = tuple(int(part) for part in steps.split(","))
        except ValueError:
            raise ConfigError(f"--steps {steps!r} must be comma-separated whole percentages") from None
        settings = settings_from(config, {})
        options = ArgoOptions(
            service=service,
            image=image,
            namespace=namespace,
            analyzer_namespace=analyzer_namespace,
            analyzer_url=analyzer_url,
            analyzer_image=analyzer_image,
            prometheus_url=prometheus_url,
            replicas=replicas,
            container_port=container_port,
            ingress_host=host,
            ingress_class=ingress_class,
            steps=ladder,
            observe_seconds=observe,
            interval_seconds=interval,
            token_secret=token_secret,
            warmup_seconds=warmup,
            cluster_gate=cluster_gate,
        )
        documents = render_argo(options, settings)
        if output_dir is None:
            typer.echo(to_yaml(documents), nl=False)
            return
        try:
            output_dir.mkdir(parents=True, exist_ok=True)
            for index, doc in enumerate(documents, start=1):
                name = f"{index:02d}-{doc['kind'].lower()}-{doc['metadata']['name']}.yaml"
                (output_dir / name).write_text(to_yaml([doc]), encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot write to {output_dir}: {exc.strerror or exc}") from exc
        typer.echo(f"wrote {len(documents)} files to {output_dir}", err=True)


CHART_HELP = (
    "The Helm chart of the analysis service (deploy/helm/canarypilot), generated from the same "
    "objects `render argo` writes, so the two never drift. See docs/kubernetes.md. "
    "Exit codes: 0 written, 2 bad input (settings or output directory)."
)


def chart(
    output_dir: Path = typer.Option(..., "--output-dir", "-o", help="The chart's directory (created)."),
    config: str | None = typer.Option(None, "--config", "-c", help="YAML settings file (breaker, query)."),
) -> None:
    with friendly_errors():
        from canarypilot._exceptions import ConfigError
        from canarypilot.operator.crd import crd_yaml
        from canarypilot.render.chart import chart_files

        files = chart_files(settings_from(config, {}), crd=crd_yaml())
        try:
            for name, text in files.items():
                path = output_dir / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot write to {output_dir}: {exc.strerror or exc}") from exc
        typer.echo(f"wrote {len(files)} files to {output_dir}", err=True)
