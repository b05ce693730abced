"""`canarypilot calibrate`: the simulator's model of a service, fitted from its stable history."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer

from canarypilot.cli.common import friendly_errors, run_async, settings_from


class Format(StrEnum):
    text = "text"
    json = "json"


def register(app: typer.Typer) -> None:
    app.command(
        "calibrate",
        help=(
            "Fit a simulator scenario suite to a service from its stable version's history. "
            "Rate and daily shape, latency with the real bucket bounds, error rate, jitter and stalls, "
            "written with variants for `canarypilot bench --suite DIR`. Exit codes: 0 written, "
            "2 usage error or too little data, 1 Prometheus unreachable or failing."
        ),
    )(calibrate)


def calibrate(
    service: str = typer.Option(..., "--service", "-s", help="Service name (the job label)."),
    start: str = typer.Option(..., "--from", help="Start of the history: Unix seconds or ISO 8601 (UTC)."),
    end: str = typer.Option(..., "--to", help="End of the history: Unix seconds or ISO 8601 (UTC)."),
    output: Path = typer.Option(
        ..., "--output", "-o", help="A .yaml file (one variant) or a directory (one file per variant)."
    ),
    prometheus: str | None = typer.Option(None, "--prometheus", "-p", help="Prometheus base URL."),
    stable_version: str | None = typer.Option(None, help="Version label fitted (default v1-stable)."),
    variants: str = typer.Option(
        "healthy,p99-25,errors-2pts,capacity-knee",
        "--variants",
        help="Comma-separated: healthy, quiet-hour, p99-25, errors-2pts, capacity-knee.",
    ),
    config: str | None = typer.Option(None, "--config", "-c", help="YAML settings file."),
    fmt: Format = typer.Option(Format.text, "--format", "-f", help="Summary on stdout: text or json."),
) -> None:
    from canarypilot.cli.analyze import parse_instant

    overrides: dict[str, Any] = {
        "prometheus": {"url": prometheus},
        "query": {"stable_version": stable_version},
    }
    with friendly_errors():
        settings = settings_from(config, overrides)
        t0 = parse_instant(start, flag="--from")
        t1 = parse_instant(end, flag="--to")
        chosen = [v.strip() for v in variants.split(",") if v.strip()]
        fitted = run_async(lambda: _fit(settings, service, t0, t1))
        from canarypilot._exceptions import ConfigError
        from canarypilot.replay.variants import write_one, write_suite

        if output.suffix in (".yaml", ".yml"):
            if len(chosen) != 1:
                raise ConfigError(f"-o {output} is one file: give one --variants, or a directory")
            written = [write_one(fitted, chosen[0], output)]
        else:
            written = write_suite(fitted, chosen, output)
    if fmt is Format.json:
        typer.echo(json.dumps({"fit": fitted.to_dict(), "written": [str(p) for p in written]}, indent=2))
        return
    f = fitted
    typer.echo(
        f"{f.service}/{f.version} over {f.hours:.1f} h at {f.step_seconds:g} s: {f.rps:.2f} req/s "
        f"(peak hour {f.peak_rps:.2f}, quietest {f.trough_rps:.2f}), median {f.median_ms:.1f} ms, "
        f"p99 {f.p99_ms:.1f} ms, errors {f.error_rate:.3%}, jitter {f.latency_jitter:.3f}, "
        f"stalls {f.stalls_per_hour:.2f}/h x{f.stall_factor:.2f} for {f.stall_seconds:.0f} s"
    )
    for path in written:
        typer.echo(f"wrote {path}")


async def _fit(settings: Any, service: str, t0: float | None, t1: float | None) -> Any:
    from canarypilot.metrics.prometheus import PrometheusMetrics
    from canarypilot.replay.calibrate import fit
    from canarypilot.replay.fetch import fetch_recording

    assert t0 is not None and t1 is not None
    version = settings.query.stable_version
    async with PrometheusMetrics(settings.prometheus, settings.query) as provider:
        fetched = await fetch_recording(provider, service, [version], start=t0, end=t1)
    return fit(fetched.recording, version)
