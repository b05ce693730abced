"""Scenarios: one release, described in YAML, checked against a JSON Schema.

A scenario says how much traffic there is, how the stable and the canary
version answer (log-normal latency given by median and p99, an error rate), what
goes wrong and when (warm-up spikes, a regression, a capacity knee, noise,
traffic dips) and how the metrics are collected (scrape interval, rate window,
scrape lag, histogram buckets). The schema ships next to this module
(``scenario.schema.json``) so editors and CI can check files too; every error
names the field it is about.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from canarypilot._exceptions import ConfigError
from canarypilot.model import validate_name

#: prometheus_client's default histogram buckets, in milliseconds.
DEFAULT_BUCKETS_MS: tuple[float, ...] = (5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000)
MAX_FILE_BYTES = 256 * 1024
_Z99 = 2.3263478740408408  # the standard normal's 99th percentile


@dataclass(frozen=True, slots=True)
class Latency:
    """A log-normal latency distribution, given by its median and its p99."""

    median_ms: float
    p99_ms: float

    @property
    def sigma(self) -> float:
        return math.log(self.p99_ms / self.median_ms) / _Z99


@dataclass(frozen=True, slots=True)
class VersionModel:
    latency: Latency
    error_rate: float


@dataclass(frozen=True, slots=True)
class WarmupSpike:
    magnitude: float
    decay_seconds: float = 20.0


@dataclass(frozen=True, slots=True)
class Regression:
    at_seconds: float = 0.0
    latency_factor: float = 1.0
    added_errors: float = 0.0


@dataclass(frozen=True, slots=True)
class CapacityKnee:
    capacity_rps: float
    latency_slope: float = 2.0
    error_slope: float = 0.05


@dataclass(frozen=True, slots=True)
class Noise:
    latency_jitter: float = 0.05
    spikes_per_hour: float = 0.0
    spike_factor: float = 2.0
    spike_seconds: float = 10.0


@dataclass(frozen=True, slots=True)
class TrafficDip:
    at_seconds: float
    duration_seconds: float
    factor: float


@dataclass(frozen=True, slots=True)
class Monitoring:
    scrape_interval_seconds: float = 15.0
    #: ``None``: each strategy uses its own window (canarypilot its policy's).
    rate_window_seconds: float | None = None
    scrape_lag_seconds: float = 5.0
    buckets_seconds: tuple[float, ...] = tuple(b / 1000 for b in DEFAULT_BUCKETS_MS)


@dataclass(frozen=True, slots=True)
class Scenario:
    """A validated scenario. Times are seconds after the rollout starts."""

    name: str
    stable: VersionModel
    canary: VersionModel
    expect: str = "promote"
    family: str = ""
    description: str = ""
    duration_seconds: float = 1800.0
    rps: float = 100.0
    slo_latency_ms: float = 500.0
    warmups: tuple[WarmupSpike, ...] = ()
    regressions: tuple[Regression, ...] = ()
    knees: tuple[CapacityKnee, ...] = ()
    noise: Noise | None = None
    dips: tuple[TrafficDip, ...] = ()
    monitoring: Monitoring = field(default_factory=Monitoring)
    routing_delay_seconds: float = 1.0

    @property
    def is_bad(self) -> bool:
        return self.expect == "rollback"

    def regression_onset(self) -> float | None:
        """When the canary turns bad by construction (a knee's onset depends on traffic)."""
        starts = [r.at_seconds for r in self.regressions if r.latency_factor > 1 or r.added_errors > 0]
        return min(starts) if starts else None


class _NoAliasLoader(yaml.SafeLoader):
    """A safe loader that refuses aliases: a few hundred bytes of nested aliases
    (a "billion laughs") would otherwise expand into gigabytes when validated."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            why = "aliases (*name) are not allowed in a scenario"
            raise yaml.composer.ComposerError(None, None, why, mark)
        return super().compose_node(parent, index)


@cache
def schema() -> dict[str, Any]:
    """The scenario JSON Schema shipped with the package."""
    text = resources.files("canarypilot.sim").joinpath("scenario.schema.json").read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate one scenario file."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ConfigError(f"{path}: larger than {MAX_FILE_BYTES // 1024} KiB; not a scenario")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read scenario {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    try:
        data = yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    return parse_scenario(data, source=str(path))


def parse_scenario(data: Any, *, source: str = "scenario") -> Scenario:
    """Validate ``data`` (parsed YAML) and build a Scenario; errors name the field."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: (len(e.absolute_path), list(e.absolute_path)))
    if errors:
        raise ConfigError(f"{source}: {_describe(_deepest(errors))}")
    try:
        return _build(data)
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def _deepest(errors: list[Any]) -> Any:
    # "if/then" failures carry the precise error in their context; show the most specific one.
    best = errors[-1]
    while best.context:
        best = max(best.context, key=lambda e: len(e.absolute_path))
    return best


def _describe(error: Any) -> str:
    where = ""
    for part in error.absolute_path:
        where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        name = f"{where}.{extra[0]}" if where and extra else (extra[0] if extra else where)
        return f"{name}: unknown field"
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return f"{where + '.' if where else ''}{missing}: required field is missing"
    return f"{where or '(top level)'}: {error.message}"


def _version(raw: dict[str, Any] | None, fallback: VersionModel | None, who: str) -> VersionModel:
    raw = raw or {}
    lat = raw.get("latency")
    if lat is not None:
        latency = Latency(float(lat["median_ms"]), float(lat["p99_ms"]))
        if latency.p99_ms <= latency.median_ms:
            raise ValueError(f"{who}.latency.p99_ms must be greater than median_ms")
    elif fallback is not None:
        latency = fallback.latency
    else:
        latency = Latency(50.0, 200.0)
    default_errors = fallback.error_rate if fallback is not None else 0.001
    return VersionModel(latency, float(raw.get("error_rate", default_errors)))


def _build(data: dict[str, Any]) -> Scenario:
    name = data["name"]
    try:
        validate_name(name, what="scenario name")
    except ConfigError as exc:
        raise ValueError(f"name: {exc}") from None
    stable = _version(data.get("stable"), None, "stable")
    canary = _version(data.get("canary"), stable, "canary")
    kinds: dict[str, list[dict[str, Any]]] = {}
    for event in data.get("events") or []:
        body = {k: v for k, v in event.items() if k != "type"}
        kinds.setdefault(event["type"], []).append(body)
    noises = kinds.get("noise", [])
    if len(noises) > 1:
        raise ValueError("events: at most one noise event")
    mon = data.get("monitoring") or {}
    buckets = tuple(sorted(float(b) / 1000 for b in mon.get("buckets_ms", DEFAULT_BUCKETS_MS)))
    if len(set(buckets)) != len(buckets):
        raise ValueError("monitoring.buckets_ms: bucket bounds must be distinct")
    window = mon.get("rate_window_seconds")
    monitoring = Monitoring(
        scrape_interval_seconds=float(mon.get("scrape_interval_seconds", 15)),
        rate_window_seconds=None if window is None else float(window),
        scrape_lag_seconds=float(mon.get("scrape_lag_seconds", 5)),
        buckets_seconds=buckets,
    )
    rps = float((data.get("traffic") or {}).get("rps", 100))
    knees = tuple(CapacityKnee(**k) for k in kinds.get("capacity_knee", []))
    regressions = tuple(Regression(**r) for r in kinds.get("regression", []))
    bad = any(r.latency_factor > 1 or r.added_errors > 0 for r in regressions) or any(
        k.capacity_rps < rps for k in knees
    )
    return Scenario(
        name=name,
        family=data.get("family") or name,
        description=data.get("description", ""),
        expect=data.get("expect") or ("rollback" if bad else "promote"),
        duration_seconds=float(data.get("duration_seconds", 1800)),
        rps=rps,
        stable=stable,
        canary=canary,
        slo_latency_ms=float((data.get("slo") or {}).get("latency_ms", 500)),
        warmups=tuple(WarmupSpike(**w) for w in kinds.get("warmup_spike", [])),
        regressions=regressions,
        knees=knees,
        noise=Noise(**noises[0]) if noises else None,
        dips=tuple(TrafficDip(**d) for d in kinds.get("traffic_dip", [])),
        monitoring=monitoring,
        routing_delay_seconds=float((data.get("routing") or {}).get("delay_seconds", 1)),
    )
