"""What every subcommand shares: exit codes and turning errors into one clear line."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import click
import typer

EXIT_PROCEED = 0
EXIT_BACKEND = 1
EXIT_USAGE = 2
EXIT_HOLD = 3
EXIT_ROLLBACK = 4


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print ``canarypilot: error: message`` on stderr and exit with ``code``."""
    typer.echo(f"canarypilot: error: {message}", err=True)
    raise typer.Exit(code)


def require_sim(command: str) -> None:
    """Exit with one line naming the extra when the simulator's libraries are missing.

    numpy and matplotlib are the ``sim`` extra: the service, ``analyze``, ``render``
    and ``rollout`` run without them (the container image leaves them out).
    """
    try:
        import matplotlib  # noqa: F401
        import numpy  # noqa: F401
    except ImportError as exc:
        fail(
            f"`canarypilot {command}` needs {exc.name or 'numpy and matplotlib'}: "
            "install canarypilot[sim] (pip install 'canarypilot[sim]')",
            EXIT_USAGE,
        )


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Map canarypilot's exceptions to exit codes (config 2, backend 1); never a traceback."""
    from canarypilot._exceptions import (
        ConfigError,
        MetricsUnavailable,
        PermanentError,
        QueryError,
        TemporaryError,
    )

    try:
        yield
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)
    except (MetricsUnavailable, QueryError) as exc:
        fail(str(exc), EXIT_BACKEND)
    except (TemporaryError, PermanentError) as exc:
        fail(str(exc), EXIT_BACKEND)
    except KeyboardInterrupt:
        typer.echo("canarypilot: interrupted", err=True)
        raise typer.Exit(130) from None
    except (typer.Exit, typer.Abort, click.ClickException):
        raise
    except Exception as exc:
        # A bug, not bad input: still one line, unless CANARYPILOT_DEBUG asks for the traceback.
        if os.environ.get("CANARYPILOT_DEBUG"):
            raise
        fail(
            f"internal error ({type(exc).__name__}: {exc}); rerun with CANARYPILOT_DEBUG=1 "
            "for the traceback and report it",
            EXIT_BACKEND,
        )


def run_async(factory: Callable[[], Any]) -> Any:
    """Run a coroutine from a synchronous command."""
    import asyncio

    return asyncio.run(factory())


def settings_from(config: str | None, overrides: dict[str, Any]) -> Any:
    """Settings from ``--config``, the environment and the flags given (flags win)."""
    from canarypilot.policy import load_settings

    return load_settings(config, overrides=overrides)


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()
