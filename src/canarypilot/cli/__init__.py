"""The ``canarypilot`` command. Each subcommand lives in its own module here.

Only typer is imported at start-up; each command imports what it needs when it
runs, so ``canarypilot --help`` stays fast.
"""

from __future__ import annotations

import typer

from canarypilot.cli import (
    analyze,
    calibrate,
    demo,
    operator,
    preflight,
    render,
    replay,
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

for module in (analyze, serve, rollout, operator, demo, simulate, replay, calibrate, render, preflight, roi):
    module.register(app)


def _first_sentence(text: str) -> str:
    head = " ".join(text.split())
    end = head.find(". ")
    return head if end < 0 else head[: end + 1]


# The command list shows one sentence each; `canarypilot COMMAND --help` shows it all.
for _info in app.registered_commands:
    if _info.help and not _info.short_help:
        _info.short_help = _first_sentence(_info.help)
for _group in app.registered_groups:
    _instance = _group.typer_instance
    _help = _instance.info.help if _instance is not None else None
    if isinstance(_help, str) and not isinstance(_group.short_help, str):
        _group.short_help = _first_sentence(_help)


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


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point.

    Usage errors (an unknown option, a bad value) become one line on stderr with
    exit code 2, like every other error of canarypilot, instead of a framed box.
    """
    import sys

    from canarypilot.cli.common import ClickException, NoArgsIsHelpError

    args = sys.argv[1:] if argv is None else argv
    try:
        result = app(args=args, prog_name="canarypilot", standalone_mode=False)
    except NoArgsIsHelpError as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except ClickException as exc:
        where = exc.ctx.command_path if getattr(exc, "ctx", None) else "canarypilot"  # type: ignore[attr-defined]
        typer.echo(f"canarypilot: error: {exc.format_message()} (see '{where} --help')", err=True)
        sys.exit(exc.exit_code)
    sys.exit(result if isinstance(result, int) else 0)
