"""What every subcommand shares: exit codes and turning errors into one clear line."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

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


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Map canarypilot's exceptions to exit codes; never show a traceback for them."""
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
