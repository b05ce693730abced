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
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from canarypilot._exceptions import ConfigError
from canarypilot.model import validate_name
from canarypilot.policy import Settings, documents

#: prometheus_client's default histogram buckets, in milliseconds.
DEFAULT_BUCKETS_MS: tuple[float, ...] = (5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000)
MAX_FILE_BYTES = 256 * 1024
_Z99 = 2.3263478740408408  # the standard normal's 99th percentile
_SLO = Settings().slo  # the policy's default thresholds: the scenario's SLO unless it says otherwise


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
    """After every weight increase: latency x ``1 + (magnitude - 1)·e^(-t/decay)``, errors
    + ``added_errors·e^(-t/decay)``. A warm-up decays; it is never degradation."""

    magnitude: float
    decay_seconds: float = 20.0
    added_errors: float = 0.0


@dataclass(frozen=True, slots=True)
class Regression:
    at_seconds: float = 0.0
    latency_factor: float = 1.0
    added_errors: float = 0.0


@dataclass(frozen=True, slots=True)
class Ramp:
    """A gradual regression: from ``at_seconds`` the canary's latency factor and added
    errors grow linearly from nothing to their full value over ``duration_seconds``."""

    at_seconds: float = 0.0
    duration_seconds: float = 600.0
    latency_factor: float = 1.0
    added_errors: float = 0.0

    def share(self, t: float) -> float:
        """How much of the ramp has happened at ``t`` (0 … 1)."""
        if t < self.at_seconds:
            return 0.0
        return min(1.0, (t - self.at_seconds) / self.duration_seconds)


@dataclass(frozen=True, slots=True)
class Episode:
    """A transient: a canary-only burst or a stall on one or both versions.

    The episodes start at ``at_seconds`` (fixed) or at random (``per_hour``, drawn
    up front per seed) and last ``seconds``; during one, the ``versions`` named
    are ``latency_factor`` times slower and fail ``added_errors`` more requests.
    """

    kind: str  # "burst" | "stall"
    versions: str  # "canary" | "stable" | "both"
    seconds: float
    latency_factor: float
    added_errors: float = 0.0
    at_seconds: tuple[float, ...] = ()
    per_hour: float = 0.0


@dataclass(frozen=True, slots=True)
class SharedJitter:
    """Load noise both versions feel at the same moment: one log-normal latency
    factor (σ ``sigma``) per ``interval_seconds``, the same for stable and canary."""

    sigma: float
    interval_seconds: float = 15.0


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
    #: The SLO's thresholds; the ground truth (degraded or not) reads them, never a strategy's policy.
    max_latency_delta: float = _SLO.max_latency_delta
    max_error_delta: float = _SLO.max_error_delta
    warmups: tuple[WarmupSpike, ...] = ()
    regressions: tuple[Regression, ...] = ()
    knees: tuple[CapacityKnee, ...] = ()
    ramps: tuple[Ramp, ...] = ()
    episodes: tuple[Episode, ...] = ()
    jitter: SharedJitter | None = None
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
        if self.beyond_slo(0.0):
            starts.append(0.0)
        starts += [t for r in self.ramps if (t := self._ramp_crossing(r)) is not None]
        return min(starts) if starts else None

    def persistent_excess(self, t: float) -> tuple[float, float]:
        """The canary's own lasting difference from stable at ``t``: p99 ratio and added errors.

        Its ``canary:`` model and the ramps; not regressions or knees (they have rules of their
        own), nor warm-ups, bursts, stalls or noise (transients, not the version's behaviour).
        """
        ratio = self.canary.latency.p99_ms / self.stable.latency.p99_ms
        errors = self.canary.error_rate - self.stable.error_rate
        for ramp in self.ramps:
            share = ramp.share(t)
            ratio *= 1 + (ramp.latency_factor - 1) * share
            errors += ramp.added_errors * share
        return ratio, errors

    def beyond_slo(self, t: float) -> bool:
        """Whether the canary's lasting excess at ``t`` is worse than the SLO's thresholds."""
        ratio, errors = self.persistent_excess(t)
        return ratio - 1 > self.max_latency_delta or errors > self.max_error_delta

    def _ramp_crossing(self, ramp: Ramp) -> float | None:
        # Ramps grow monotonically: bisect for the moment the excess crosses a threshold.
        end = ramp.at_seconds + ramp.duration_seconds
        if not self.beyond_slo(end):
            return None
        low, high = ramp.at_seconds, end
        for _ in range(40):
            mid = (low + high) / 2
            low, high = (low, mid) if self.beyond_slo(mid) else (mid, high)
        return high


class _NoAliasLoader(documents.SafeLoader):
    """The bounded loader every file goes through (depth, node count, duplicate keys),
    refusing aliases too: a scenario has no use for them."""

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
        raise documents.yaml_error(exc, str(path)) from None
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
    jitters = kinds.get("shared_jitter", [])
    if len(jitters) > 1:
        raise ValueError("events: at most one shared_jitter event")
    slo = data.get("slo") or {}
    scenario = Scenario(
        name=name,
        family=data.get("family") or name,
        description=data.get("description", ""),
        expect=data.get("expect") or "promote",
        duration_seconds=float(data.get("duration_seconds", 1800)),
        rps=rps,
        stable=stable,
        canary=canary,
        slo_latency_ms=float(slo.get("latency_ms", 500)),
        max_latency_delta=float(slo.get("max_latency_delta", _SLO.max_latency_delta)),
        max_error_delta=float(slo.get("max_error_delta", _SLO.max_error_delta)),
        warmups=tuple(WarmupSpike(**w) for w in kinds.get("warmup_spike", [])),
        regressions=regressions,
        knees=knees,
        ramps=tuple(Ramp(**r) for r in kinds.get("ramp", [])),
        episodes=tuple(_episode(kind, e) for kind in ("burst", "stall") for e in kinds.get(kind, [])),
        jitter=SharedJitter(**jitters[0]) if jitters else None,
        noise=Noise(**noises[0]) if noises else None,
        dips=tuple(TrafficDip(**d) for d in kinds.get("traffic_dip", [])),
        monitoring=monitoring,
        routing_delay_seconds=float((data.get("routing") or {}).get("delay_seconds", 1)),
    )
    if data.get("expect"):
        return scenario
    bad = (
        any(r.latency_factor > 1 or r.added_errors > 0 for r in regressions)
        or any(k.capacity_rps < rps for k in knees)
        or scenario.regression_onset() is not None
    )
    return replace(scenario, expect="rollback" if bad else "promote")


def _episode(kind: str, raw: dict[str, Any]) -> Episode:
    at = tuple(sorted(float(t) for t in raw.get("at_seconds", ())))
    per_hour = float(raw.get("per_hour", 0))
    if not at and per_hour <= 0:
        raise ValueError(f"events: a {kind} needs at_seconds or a per_hour above 0")
    return Episode(
        kind=kind,
        versions="canary" if kind == "burst" else str(raw.get("versions", "both")),
        seconds=float(raw.get("seconds", 20 if kind == "stall" else 10)),
        latency_factor=float(raw.get("latency_factor", 5 if kind == "stall" else 2)),
        added_errors=float(raw.get("added_errors", 0)),
        at_seconds=at,
        per_hour=per_hour,
    )
