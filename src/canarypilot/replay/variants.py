"""Scenario files from a fit: the user's own service, healthy and broken in known ways.

Each variant is the fitted stable version as the scenario's ``stable:``, the
fitted traffic, jitter and stalls as a ``noise`` event, the real bucket
bounds and scrape interval as ``monitoring``, and one change to the canary:

=================  ==============================================================
``healthy``        nothing: the canary is the stable version (``expect: promote``)
``quiet-hour``     healthy, at the quietest hour's rate (the daily shape's trough)
``p99-25``         the canary 25 % slower throughout: p99 +25 % (``rollback``)
``errors-2pts``    two more errors in a hundred requests (the default threshold)
``capacity-knee``  fine up to 30 % of the traffic, then saturating (``rollback``)
=================  ==============================================================

Every document is validated with the simulator's own parser before it is
written, so ``canarypilot bench --suite DIR`` accepts what calibrate writes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from canarypilot._exceptions import ConfigError
from canarypilot.replay.calibrate import Fit
from canarypilot.sim.scenario import parse_scenario

Variant = Callable[[Fit], dict[str, Any]]


def _healthy(fit: Fit) -> dict[str, Any]:
    return {"description": f"Fitted to {fit.service}/{fit.version}: the canary is the same version."}


def _quiet(fit: Fit) -> dict[str, Any]:
    return {
        "description": f"Healthy, at {fit.service}'s quietest hour ({fit.trough_rps:.1f} requests/s).",
        "traffic": {"rps": _round(max(fit.trough_rps, 0.01))},
    }


def _p99(fit: Fit) -> dict[str, Any]:
    return {
        "description": "The canary is 25% slower on every request: p99 +25%.",
        "events": [{"type": "regression", "at_seconds": 0, "latency_factor": 1.25}],
    }


def _errors(fit: Fit) -> dict[str, Any]:
    return {
        "description": "The canary fails 2 more requests in 100 (the default error threshold).",
        "events": [{"type": "regression", "at_seconds": 0, "added_errors": 0.02}],
    }


def _knee(fit: Fit) -> dict[str, Any]:
    return {
        "description": "The canary is fine up to 30% of the traffic, then saturates.",
        "events": [{"type": "capacity_knee", "capacity_rps": _round(0.3 * fit.rps)}],
    }


VARIANTS: dict[str, Variant] = {
    "healthy": _healthy,
    "quiet-hour": _quiet,
    "p99-25": _p99,
    "errors-2pts": _errors,
    "capacity-knee": _knee,
}


def scenario(fit: Fit, variant: str, *, duration_seconds: float = 1800.0) -> dict[str, Any]:
    """The scenario document of one variant (validated)."""
    try:
        change = VARIANTS[variant](fit)
    except KeyError:
        raise ConfigError(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}") from None
    noise: dict[str, Any] = {"type": "noise", "latency_jitter": _round(min(fit.latency_jitter, 2.0))}
    if fit.stalls_per_hour > 0:
        noise.update(
            spikes_per_hour=_round(min(2 * fit.stalls_per_hour, 3600.0)),
            spike_factor=_round(min(max(fit.stall_factor, 1.0), 100.0)),
            spike_seconds=_round(max(fit.stall_seconds, 1.0)),
        )
    doc: dict[str, Any] = {
        "name": f"{fit.service}-{variant}",
        "family": fit.service,
        "description": change.pop("description"),
        "duration_seconds": duration_seconds,
        "traffic": change.pop("traffic", {"rps": _round(fit.rps)}),
        "stable": {
            "latency": {"median_ms": _round(fit.median_ms), "p99_ms": _round(fit.p99_ms)},
            "error_rate": _round(min(fit.error_rate, 1.0)),
        },
        "monitoring": {
            "scrape_interval_seconds": fit.step_seconds,
            "buckets_ms": [_round(b) for b in fit.bounds_ms],
        },
        "events": [*change.pop("events", []), noise],
    }
    parse_scenario(doc, source=f"calibrated variant {variant}")
    return doc


def write_suite(fit: Fit, variants: Sequence[str], directory: Path) -> list[Path]:
    """Write one YAML file per variant into ``directory``; returns the files written."""
    docs = [scenario(fit, v) for v in variants]  # validate all before writing any
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for doc in docs:
        path = directory / f"{doc['name']}.yaml"
        path.write_text(_yaml(doc, fit), encoding="utf-8")
        written.append(path)
    return written


def write_one(fit: Fit, variant: str, path: Path) -> Path:
    path.write_text(_yaml(scenario(fit, variant), fit), encoding="utf-8")
    return path


def _yaml(doc: dict[str, Any], fit: Fit) -> str:
    shape = ", ".join("-" if s is None else f"{s:.2f}" for s in fit.daily_shape)
    header = (
        f"# canarypilot calibrate: fitted to {fit.service}/{fit.version} over {fit.hours:.1f} h\n"
        f"# rate {fit.rps:.2f}/s (peak hour {fit.peak_rps:.2f}/s, quietest {fit.trough_rps:.2f}/s)\n"
        f"# daily shape, UTC hours 0-23, x mean rate: {shape}\n"
    )
    return header + yaml.safe_dump(doc, sort_keys=False)


def _round(value: float) -> float:
    """Four significant digits: a fit is not more precise than that."""
    if value == 0:
        return 0.0
    return float(f"{value:.4g}")
