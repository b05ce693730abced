"""Measured rates instead of assumed ones: read a ``canarypilot bench`` JSON report.

The article's rollback and false-positive rates are claims. A bench report has
measured ones: ``false_rollback_rate`` (healthy versions rolled back) and
``detection_rate`` (bad versions rolled back) for the static ladder and for
canarypilot. A suite's mix of good and bad scenarios is not a production mix,
so the rollback rate is rebuilt from a bad-release rate (a parameter)::

    rollback_rate = bad_release_rate * detection_rate
                  + (1 - bad_release_rate) * false_rollback_rate

This module reads the file only; it does not import the simulator (the layers
keep ``roi`` independent of ``sim``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from canarypilot._exceptions import ConfigError

MAX_REPORT_BYTES = 64 * 1024 * 1024
#: The article's post-change rollback rate, read as the share of releases that are really bad.
DEFAULT_BAD_RELEASE_RATE = 0.025


@dataclass(frozen=True, slots=True)
class MeasuredRates:
    """Rates of one strategy as measured by a bench run."""

    strategy: str
    false_rollback_rate: float
    detection_rate: float
    healthy_runs: int
    bad_runs: int

    def rollback_rate(self, bad_release_rate: float) -> float:
        return bad_release_rate * self.detection_rate + (1 - bad_release_rate) * self.false_rollback_rate


def read_bench(
    path: str | Path, *, baseline: str = "static", product: str = "canarypilot"
) -> dict[str, MeasuredRates]:
    """The baseline's and the product's measured rates, keyed ``"static"`` and ``"dynamic"``."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_REPORT_BYTES:
            raise ConfigError(f"{path}: larger than {MAX_REPORT_BYTES // 2**20} MiB; not a bench report")
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read bench report {path}: {exc.strerror or exc}") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not a JSON bench report ({exc})") from None
    summary = data.get("summary") if isinstance(data, dict) else None
    if not isinstance(summary, dict):
        raise ConfigError(f"{path}: no 'summary' object; write one with: canarypilot bench --out DIR")
    return {
        "static": _rates(summary, baseline, path),
        "dynamic": _rates(summary, product, path),
    }


def _rates(summary: dict[str, Any], strategy: str, path: Path) -> MeasuredRates:
    row = summary.get(strategy)
    if not isinstance(row, dict):
        raise ConfigError(f"{path}: the report has no results for strategy {strategy!r}")
    values: dict[str, Any] = {}
    for key in ("false_rollback_rate", "detection_rate"):
        value = row.get(key)
        if not isinstance(value, int | float) or not 0 <= value <= 1:
            raise ConfigError(
                f"{path}: summary.{strategy}.{key} is {value!r}, not a fraction "
                "(the suite needs both healthy and bad scenarios)"
            )
        values[key] = float(value)
    return MeasuredRates(
        strategy=strategy,
        healthy_runs=int(row.get("healthy_runs") or 0),
        bad_runs=int(row.get("bad_runs") or 0),
        **values,
    )
