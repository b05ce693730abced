"""The ``canarypilot`` command. Each subcommand lives in its own module here.

Only typer is imported at start-up; each command imports what it needs when it
runs, so ``canarypilot --help`` stays fast.
"""

from __future__ import annotations

import typer

from canarypilot.cli import (
    analyze,
    demo,
    preflight,
    render,
    roi,
    rollout,
    serve,
    simulate,
)

app = typer.Typer(
    name="canarypilot",
    help=(
        "Latency-driven canary analysis: compares the canary with the stable version "
        "(p99 latency, error rate), turns the deltas into a safe traffic weight, and "
        "proceeds, holds or rolls back."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

for module in (analyze, serve, rollout, demo, simulate, render, preflight, roi):
    module.register(app)


def _version(value: bool) -> None:
    if value:
        from canarypilot import __version__

        typer.echo(f"canarypilot {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """canarypilot: how much traffic can this canary safely take?"""


def main() -> None:
    """Console-script entry point."""
    app()
