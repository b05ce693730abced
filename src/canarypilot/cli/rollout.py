"""`canarypilot rollout`: drive one rollout to its end, and control a running one.

    canarypilot rollout --config rollout.yaml [--state-dir DIR]      # run
    canarypilot rollout --resume --state-dir DIR                     # after a crash
    canarypilot rollout status|pause|resume|abort|promote --state-dir DIR

Exit codes of a run: 0 promoted, 4 rolled back, 5 aborted, 1 router or metrics
failure (e.g. a rollback the router did not confirm), 2 usage or config error.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from canarypilot.cli.common import EXIT_BACKEND, EXIT_ROLLBACK, EXIT_USAGE, fail, friendly_errors

EXIT_ABORTED = 5

app = typer.Typer(
    help=(
        "Drive one rollout through a traffic router (HAProxy, nginx, nginx-ingress, Gateway API, "
        "Argo Rollouts). Exit codes: 0 promoted, 4 rolled back, 5 aborted, 1 router/metrics "
        "failure, 2 usage error."
    ),
    invoke_without_command=True,
    no_args_is_help=False,
)

_STATE_HELP = "State directory (SQLite state + audit.jsonl). Default: .canarypilot/rollouts/<name>."


def _state_dir(state_dir: Path | None, config: Path | None) -> Path:
    if state_dir is not None:
        return state_dir
    if config is None:
        fail("give --state-dir DIR (or --config FILE to use the default directory)")
    from canarypilot.rollout.config import load_rollout_file

    file, _ = load_rollout_file(config)
    return Path(".canarypilot") / "rollouts" / file.name


@app.callback()
def rollout(
    ctx: typer.Context,
    config: Path | None = typer.Option(None, "--config", "-c", help="The rollout file (YAML)."),
    state_dir: Path | None = typer.Option(None, "--state-dir", help=_STATE_HELP),
    resume: bool = typer.Option(False, "--resume", help="Continue the rollout stored in --state-dir."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress lines; only the outcome."),
    metrics_port: int = typer.Option(
        0,
        "--metrics-port",
        min=0,
        max=65535,
        help="Serve the rollout's Prometheus metrics (canarypilot_applied_weight, decisions, deltas) "
        "on this port while it runs; 0: off.",
    ),
    metrics_address: str = typer.Option(
        "127.0.0.1", "--metrics-address", help="Address for --metrics-port (0.0.0.0: all interfaces)."
    ),
) -> None:
    """Drive one rollout to promoted or rolled back (see the commands below to control it)."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = {"config": config, "state_dir": state_dir}
        return
    if config is None and not resume:
        fail("give --config FILE (or --resume --state-dir DIR); see canarypilot rollout --help")
    if resume and state_dir is None and config is None:
        fail("--resume needs --state-dir DIR")
    with friendly_errors():
        code = _run(
            config, _state_dir(state_dir, config), resume=resume, quiet=quiet,
            metrics_port=metrics_port, metrics_address=metrics_address,
        )  # fmt: skip
    raise typer.Exit(code)


def _run(
    config: Path | None,
    state_dir: Path,
    *,
    resume: bool,
    quiet: bool,
    metrics_port: int = 0,
    metrics_address: str = "127.0.0.1",
) -> int:
    import asyncio
    import logging
    from contextlib import AsyncExitStack

    from canarypilot.rollout import Phase, RolloutController, StateStore
    from canarypilot.rollout.config import (
        REDACTED,
        load_rollout_file,
        open_metrics,
        open_router,
        parse_rollout_file,
        stored_copy,
    )
    from canarypilot.rollout.progress import printer

    logging.basicConfig(level=logging.WARNING, format="canarypilot: %(levelname)s: %(message)s")
    # Read (not yet stored) before the state directory exists: a bad file leaves nothing behind.
    given = load_rollout_file(config) if config is not None else None
    store = StateStore(state_dir)
    try:
        # Before any write: a refused second controller must not replace the stored file.
        store.lock()
        stored = store.load()
        if stored is not None and not resume:
            fail(
                f"{state_dir} already holds rollout {stored.name!r} ({stored.phase.value}); "
                "continue it with --resume, or use another --state-dir"
            )
        if resume and stored is None:
            fail(f"nothing to resume in {state_dir}: no rollout state there")
        if given is not None:
            file, text = given
        else:
            text = store.load_config() or ""
            if not text:
                fail(f"{state_dir} has no stored rollout file; pass --config")
            if REDACTED in text:
                fail(f"{state_dir} keeps the rollout file without its secrets; pass --config FILE again")
            file = parse_rollout_file(text, source=f"stored rollout file in {state_dir}")
        store.load(file.name)  # the directory must belong to this rollout
        store.save_config(stored_copy(file, text))
        on_event = _observers(
            None if quiet else printer(typer.echo),
            _serve_metrics(file.spec().target.service, metrics_port, metrics_address),
        )

        async def drive() -> Any:
            async with AsyncExitStack() as stack:
                metrics = await open_metrics(file, stack)
                router = open_router(file, stack)
                controller = RolloutController(
                    file.spec(), metrics=metrics, router=router, store=store,
                    notifier=file.notifier(), on_event=on_event,
                )  # fmt: skip
                return await controller.run()

        try:
            outcome = asyncio.run(drive())
        except KeyboardInterrupt:
            typer.echo(
                "canarypilot: interrupted; continue with: "
                f"canarypilot rollout --resume --state-dir {state_dir}",
                err=True,
            )
            return 130
    finally:
        store.close()
    typer.echo(json.dumps(outcome.to_dict()))
    codes = {Phase.PROMOTED: 0, Phase.ROLLED_BACK: EXIT_ROLLBACK, Phase.ABORTED: EXIT_ABORTED}
    if outcome.phase is Phase.FAILED:
        typer.echo(f"canarypilot: error: rollout FAILED: {'; '.join(outcome.reasons)}", err=True)
    return codes.get(outcome.phase, EXIT_BACKEND)


def _serve_metrics(service: str, port: int, address: str) -> Callable[[Any], None] | None:
    """Start the rollout's /metrics endpoint (a daemon thread that ends with the process)."""
    if not port:
        return None
    from prometheus_client import start_http_server

    from canarypilot.rollout.telemetry import RolloutMetrics

    metrics = RolloutMetrics(service)
    try:
        start_http_server(port, addr=address, registry=metrics.registry)
    except OSError as exc:
        fail(f"cannot serve metrics on {address}:{port}: {exc.strerror or exc}")
    return metrics.observe


def _observers(*callbacks: Callable[[Any], None] | None) -> Callable[[Any], None] | None:
    chosen = [c for c in callbacks if c is not None]
    if not chosen:
        return None
    if len(chosen) == 1:
        return chosen[0]

    def fan_out(event: Any) -> None:
        for callback in chosen:
            callback(event)

    return fan_out


# -- control commands -------------------------------------------------------------------------


def _control(ctx: typer.Context, command: str) -> None:
    from canarypilot.rollout import Command, StateStore

    opts = ctx.obj or {}
    with friendly_errors():
        state_dir = _state_dir(opts.get("state_dir"), opts.get("config"))
        if not (state_dir / "state.db").exists():
            fail(f"no rollout in {state_dir}")
        with StateStore(state_dir) as store:
            state = store.load()
            if state is None:
                fail(f"no rollout in {state_dir}")
            if state.phase.final:
                fail(f"rollout {state.name!r} already ended: {state.phase.value}")
            import time

            store.put_command(Command(command), at=time.time())
            running = _controller_running(state_dir)
        when = "within a second" if running else "when the controller is resumed (none is running now)"
        typer.echo(f"{command}: queued for rollout {state.name!r}; taken {when}")


def _control_release(reference: str, command: str, *, kubeconfig: str | None, context: str | None) -> None:
    """Set the ``canarypilot.io/command`` annotation the operator takes (docs/operator.md)."""
    import asyncio

    from canarypilot.operator.status import COMMAND_ANNOTATION, release_path
    from canarypilot.render.argo import dns_label
    from canarypilot.routing.kubernetes import KubeClient, NotFound

    with friendly_errors():
        namespace, _, name = reference.partition("/")
        if not name:
            fail(f"--release must be NAMESPACE/NAME, not {reference!r}")
        dns_label(namespace, "namespace")
        dns_label(name, "CanaryRelease name")

        async def send() -> str:
            client = KubeClient.from_environment(kubeconfig=kubeconfig, context=context)
            try:
                path = release_path(namespace, name)
                try:
                    current = await client.get(path)
                except NotFound:
                    fail(f"no CanaryRelease {namespace}/{name}")
                phase = str((current.get("status") or {}).get("phase") or "")
                if phase in ("Promoted", "RolledBack", "Aborted", "Failed", "Invalid"):
                    fail(f"release {namespace}/{name} is {phase}: nothing to {command}")
                await client.patch(path, {"metadata": {"annotations": {COMMAND_ANNOTATION: command}}})
                return phase or "not started"
            finally:
                await client.aclose()

        phase = asyncio.run(send())
    typer.echo(f"{command}: asked of {reference} (now {phase}); the operator takes it on its next pass")


def _controller_running(state_dir: Path) -> bool:
    import fcntl

    try:
        with (state_dir / "lock").open("ab") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(handle, fcntl.LOCK_UN)
            return False
    except OSError:
        return True


@app.command()
def status(
    ctx: typer.Context,
    state_dir: Path | None = typer.Option(None, "--state-dir", help=_STATE_HELP),
    output: str = typer.Option("table", "--format", help="table or json."),
    events: int = typer.Option(5, "--events", min=0, max=1000, help="How many recent events to show."),
) -> None:
    """Where the rollout stands: phase, step, weight, last analysis, recent events."""
    from canarypilot.rollout import StateStore
    from canarypilot.rollout.progress import describe

    if output not in ("table", "json"):
        fail("--format must be table or json")
    opts = ctx.obj or {}
    with friendly_errors():
        directory = _state_dir(state_dir or opts.get("state_dir"), opts.get("config"))
        if not (directory / "state.db").exists():
            fail(f"no rollout in {directory}")
        with StateStore(directory) as store:
            state = store.load()
            if state is None:
                fail(f"no rollout in {directory}")
            recent = store.events()[-events:] if events else []
    running = _controller_running(directory)
    if output == "json":
        body = json.loads(state.to_json())
        body["controller_running"] = running
        body["events"] = [e.to_dict() for e in recent]
        typer.echo(json.dumps(body, indent=2))
        return
    last = state.last_analysis
    typer.echo(f"rollout   {state.name}  ({'controller running' if running else 'no controller running'})")
    typer.echo(f"phase     {state.phase.value}")
    typer.echo(f"weight    {state.weight:g}%   step {state.step} of {state.steps}")
    if last is not None:
        lat, err, safe = last.latency_delta, last.error_delta, last.safe_weight
        typer.echo(
            f"analysis  {last.status.value}: p99 delta {'n/a' if lat is None else f'{lat:+.1%}'}, "
            f"error delta {'n/a' if err is None else f'{err * 100:+.2f} pts'}, "
            f"safe weight {'n/a' if safe is None else f'{safe:g}%'}"
        )
    if state.reasons:
        typer.echo(f"reasons   {'; '.join(state.reasons)}")
    for event in recent:
        line = describe(event)
        if line:
            typer.echo(f"  {line}")


def _make_control(name: str, text: str) -> None:
    def command(
        ctx: typer.Context,
        state_dir: Path | None = typer.Option(None, "--state-dir", help=_STATE_HELP),
        release: str | None = typer.Option(
            None,
            "--release",
            help="A CanaryRelease as NAMESPACE/NAME: ask the operator instead of a local rollout.",
        ),
        kubeconfig: str | None = typer.Option(None, help="With --release: kubeconfig path."),
        context: str | None = typer.Option(None, help="With --release: kubeconfig context."),
    ) -> None:
        if release is not None:
            _control_release(release, name, kubeconfig=kubeconfig, context=context)
            return
        if state_dir is not None:
            ctx.obj = {**(ctx.obj or {}), "state_dir": state_dir}
        _control(ctx, name)

    command.__doc__ = text
    app.command(name=name)(command)


_make_control("pause", "Hold the current weight (analysis and rollback stay active).")
_make_control("resume", "Continue a paused rollout.")
_make_control("abort", "Roll back to 0% now and end the rollout as aborted (exit 5).")
_make_control("promote", "Send 100% to the canary now and end the rollout as promoted.")


def register(root: typer.Typer) -> None:
    """Add ``canarypilot rollout`` to the main app."""
    root.add_typer(app, name="rollout")


__all__ = ["EXIT_ABORTED", "EXIT_USAGE", "register"]
