"""Fakes for driving the controller in virtual time."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from canarypilot._exceptions import MetricsUnavailable
from canarypilot.clock import FakeClock
from canarypilot.model import Snapshot, Target, VersionStats
from canarypilot.policy import Settings
from canarypilot.rollout import RolloutSpec

TARGET = Target("payment-api")


def stats(p99: float, err: float = 0.0, requests: float = 5000.0, canary: bool = False) -> VersionStats:
    return VersionStats("v2-canary" if canary else "v1-stable", p99, err, requests)


@dataclass
class Health:
    """What the canary looks like: p99 relative to stable's 200 ms, and its error rate."""

    latency_delta: float = 0.0
    error_rate: float = 0.0
    requests: float = 1000.0
    offline: bool = False


@dataclass
class ScriptedMetrics:
    """Answers from a function of virtual time; records every window it was asked for."""

    clock: FakeClock
    health: Callable[[float], Health] = lambda _t: Health()
    calls: list[tuple[float, float | None]] = field(default_factory=list)

    async def snapshot(self, target: Target, *, window_seconds: float | None = None) -> Snapshot:
        now = self.clock.now()
        self.calls.append((now, window_seconds))
        h = self.health(now)
        if h.offline:
            raise MetricsUnavailable("connection refused")
        stable = stats(0.200)
        canary = stats(0.200 * (1 + h.latency_delta), h.error_rate, h.requests, canary=True)
        return Snapshot(target, stable, canary, at=now, window_seconds=window_seconds or 300)

    async def is_online(self) -> bool:
        return True


def make_spec(**sections: dict[str, object]) -> RolloutSpec:
    """A spec with settings overridden per section, e.g. ``make_spec(breaker={"warmup_seconds": 0})``."""
    return RolloutSpec("payment-api", TARGET, Settings().merged(sections))
