"""``canarypilot operator``: the controller in the cluster (run), its CRD (crd), and its
ServiceAccount, RBAC and Deployment (manifests)."""

from __future__ import annotations

import os
import socket

import typer

from canarypilot._version import IMAGE
from canarypilot.cli.common import EXIT_BACKEND, fail, friendly_errors

operator_app = typer.Typer(
    help=(
        "The controller in the cluster: reconciles CanaryRelease resources (canarypilot.io/v1alpha1), "
        "each driven by the same state machine and decision engine as `canarypilot rollout`, its "
        "state in the resource's status, one leader at a time on a Lease. See docs/operator.md."
    ),
    no_args_is_help=True,
)


@operator_app.command(
    "run",
    help=(
        "Lead and reconcile CanaryReleases until stopped (SIGTERM/SIGINT). Exit codes: 0 stopped, "
        "1 the API server failed or leadership was lost (restart to campaign again), 2 bad options "
        "or kubeconfig."
    ),
)
def run(
    namespace: str | None = typer.Option(None, help="Watch one namespace (default: all)."),
    kubeconfig: str | None = typer.Option(
        None, help="Kubeconfig path (default: in-cluster, then ~/.kube/config)."
    ),
    context: str | None = typer.Option(None, help="Kubeconfig context."),
    lease_namespace: str = typer.Option("default", help="Namespace of the leader-election Lease."),
    lease_name: str = typer.Option("canarypilot-operator", help="Name of the Lease."),
    identity: str | None = typer.Option(None, help="This replica's name in the Lease (default: host-pid)."),
    lease_seconds: float = typer.Option(15.0, min=2.0, help="Lease duration."),
    renew_seconds: float = typer.Option(5.0, min=0.5, help="Renewal period (shorter than the duration)."),
    poll_seconds: float = typer.Option(2.0, min=0.1, help="Seconds between two passes over the releases."),
) -> None:
    import asyncio
    import logging
    import signal

    from canarypilot.operator import LeaderElector, LeadershipLost, Operator
    from canarypilot.routing.kubernetes import KubeClient

    if renew_seconds >= lease_seconds:
        fail("--renew-seconds must be shorter than --lease-seconds")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    who = identity or f"{socket.gethostname()}-{os.getpid()}"

    async def main() -> None:
        client = KubeClient.from_environment(kubeconfig=kubeconfig, context=context)
        try:
            elector = LeaderElector(
                client,
                namespace=lease_namespace,
                name=lease_name,
                identity=who,
                duration_seconds=lease_seconds,
                renew_seconds=renew_seconds,
            )
            task = asyncio.create_task(
                Operator(client, elector, namespace=namespace, poll_seconds=poll_seconds).run()
            )
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, task.cancel)
            try:
                await task
            except asyncio.CancelledError:
                typer.echo("canarypilot operator: stopped", err=True)
        finally:
            await client.aclose()

    with friendly_errors():
        try:
            asyncio.run(main())
        except LeadershipLost as exc:
            fail(f"{exc}; stopped writing", EXIT_BACKEND)


@operator_app.command("crd", help="Print the CanaryRelease CustomResourceDefinition (YAML). Exit code 0.")
def crd() -> None:
    from canarypilot.operator.crd import crd_yaml

    typer.echo(crd_yaml(), nl=False)


@operator_app.command(
    "manifests",
    help=(
        "Print the operator's ServiceAccount, least-privilege RBAC (ClusterRole and binding, the "
        "Lease Role) and Deployment (YAML), to apply after the CRD. Exit codes: 0 printed, 2 bad "
        "options."
    ),
)
def manifests(
    namespace: str = typer.Option("canarypilot", help="Namespace the operator runs in (and its Lease)."),
    image: str = typer.Option(IMAGE, help="The canarypilot image (the analyzer's)."),
    watch_namespace: str | None = typer.Option(
        None, help="Reconcile only this namespace (a RoleBinding there; default: every namespace)."
    ),
    secret: list[str] = typer.Option(  # noqa: B008
        [], help="A Secret releases name in authSecretRef, the only Secrets it may read (repeatable)."
    ),
    replicas: int = typer.Option(2, min=1, max=10, help="Replicas (one leads, the others wait)."),
) -> None:
    import yaml

    from canarypilot.render.operator import OperatorOptions, operator_objects

    with friendly_errors():
        options = OperatorOptions(
            namespace=namespace,
            image=image,
            watch_namespace=watch_namespace,
            secret_names=tuple(secret),
            replicas=replicas,
        )
        typer.echo(yaml.safe_dump_all(operator_objects(options), sort_keys=False), nl=False)


def register(app: typer.Typer) -> None:
    app.add_typer(operator_app, name="operator")
