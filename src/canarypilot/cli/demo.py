"""`canarypilot demo`: a whole canary rollout on this machine, nothing to install or configure.

Exit codes: 0 the rollout reached the scenario's expected outcome; 5 it did not
(a wrong decision, or the run timed out); 1 a component could not start;
2 bad flags; 130 interrupted by Ctrl-C, 143 terminated by SIGTERM (everything
started is stopped first, in both cases).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from canarypilot.cli.common import friendly_errors, require_sim, stdout_is_terminal

#: The rollout did not reach the outcome the scenario expects.
EXIT_UNEXPECTED = 5
#: Stopped by SIGTERM (128 + 15, as shells report it).
EXIT_TERMINATED = 143
#: Stopped by Ctrl-C (128 + 2).
EXIT_INTERRUPTED = 130


def register(app: typer.Typer) -> None:
    app.command(
        "demo",
        help=(
            "Run a whole canary rollout on this machine: two versions of a sample service, "
            "users, a router (HAProxy when installed, else an embedded proxy), metrics (a local "
            "Prometheus when installed, else an embedded scraper) and the rollout controller, "
            "with compressed timings. Ends with a one-line outcome and an HTML report. "
            "Exit codes: 0 expected outcome reached, 5 not reached, 1 a component failed to "
            "start, 2 bad flags, 130 Ctrl-C, 143 SIGTERM."
        ),
    )(demo)


def demo(
    scenario: str = typer.Option(
        "warmup-spike",
        "--scenario",
        "-s",
        help="healthy, latency-regression, error-regression, warmup-spike or capacity-knee.",
    ),
    duration: float | None = typer.Option(
        None,
        "--duration",
        "-d",
        help="Roughly how long a promoting rollout takes, in seconds; pauses and windows scale with it "
        "(default: 60; 40 with --fast).",
    ),
    fast: bool = typer.Option(False, "--fast", help="The CI preset: shorter pauses, same real traffic."),
    rps: float = typer.Option(300.0, "--rps", help="Requests per second the simulated users send."),
    live: bool = typer.Option(
        True, "--live/--no-live", help="Live panel, or plain progress lines (default when not a terminal)."
    ),
    backend: str = typer.Option(
        "auto",
        "--backend",
        help="auto: HAProxy and Prometheus when installed; real: require them; embedded: built-in proxy "
        "and scraper.",
    ),
    state_dir: Path | None = typer.Option(
        None,
        "--state-dir",
        help="Directory for this run's audit log, report and data (default: a new temp dir).",
    ),
    report: Path | None = typer.Option(
        None,
        "--report",
        help="Where to write the HTML report (PNG charts beside it; default: RUN_DIR/report.html).",
    ),
    seed: int | None = typer.Option(None, "--seed", help="Seed for the services' randomness."),
) -> None:
    require_sim("demo")
    import asyncio

    from canarypilot.demo.runner import Backend, DemoOptions, Processes, run_demo, until_terminated
    from canarypilot.demo.scenarios import FAST, Pacing
    from canarypilot.demo.scenarios import scenario as find

    with friendly_errors():
        try:
            chosen = Backend(backend)
        except ValueError:
            from canarypilot._exceptions import ConfigError

            raise ConfigError(f"unknown --backend {backend!r}; use auto, real or embedded") from None
        if report is not None and report.is_dir():
            from canarypilot._exceptions import ConfigError

            raise ConfigError(
                f"--report {report} is a directory; give a file name such as {report}/report.html"
            )
        base = FAST if fast else Pacing()
        pacing = Pacing(duration=duration or base.duration, rps=rps)
        options = DemoOptions(
            scenario=find(scenario),
            pacing=pacing,
            router=chosen,
            metrics=chosen,
            state_dir=state_dir,
            report=report,
            seed=seed,
        )
        processes = Processes()
        make_view = _live_view if live and stdout_is_terminal() else _plain_view
        reports: list[Path] = []
        try:
            result = asyncio.run(
                until_terminated(run_demo(options, processes=processes, make_view=make_view, reports=reports))
            )
        except (asyncio.CancelledError, KeyboardInterrupt) as exc:
            how = "terminated" if isinstance(exc, asyncio.CancelledError) else "interrupted"
            where = f"; report so far: {reports[0]}" if reports else ""
            typer.echo(f"canarypilot: {how}; everything the demo started is stopped{where}", err=True)
            raise typer.Exit(EXIT_TERMINATED if how == "terminated" else EXIT_INTERRUPTED) from None
        except OSError as exc:
            from canarypilot._exceptions import TemporaryError

            raise TemporaryError(f"could not start the demo: {exc.strerror or exc}") from exc
        finally:
            processes.stop_all()
    typer.echo(result.headline)
    typer.echo(f"report: {result.files[0]}")
    if not result.ok:
        raise typer.Exit(EXIT_UNEXPECTED)


def _plain_view(title: str, setup: str, started: float) -> Any:
    from canarypilot.demo.live import PlainView

    view = PlainView(sys.stdout, started=started)
    print(f"{title}\n{setup}", flush=True)
    return view


def _live_view(title: str, setup: str, started: float) -> Any:
    from canarypilot.demo.live import LiveView

    return LiveView(title=title, setup=setup, started=started)
