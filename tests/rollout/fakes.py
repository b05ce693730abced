"""Fakes for driving the controller in virtual time."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from canarypilot._exceptions import MetricsUnavailable
from canarypilot.clock import FakeClock
from canarypilot.metrics.history import Slicing, summarize
from canarypilot.metrics.static import histogram_with_p99
from canarypilot.model import Slice, SliceCounts, Snapshot, StepHistory, Target, VersionStats
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

    async def history(
        self,
        target: Target,
        *,
        weight: float,
        slicing: Slicing,
        since: float | None = None,
        at: float | None = None,
    ) -> StepHistory:
        """Each slice as ``health`` describes it at the slice's end: ``requests`` canary
        requests per 300 s, stable at 5,000 per 300 s and 200 ms."""
        now = self.clock.now() if at is None else at
        begin = now - 300 if since is None else since
        self.calls.append((now, now - begin))
        if self.health(now).offline:
            raise MetricsUnavailable("connection refused")
        slices = []
        for end in slicing.ends(begin, now):
            h = self.health(end)
            share = slicing.length / 300
            stable_n, canary_n = 5000 * share, h.requests * share
            slow = 0.200 * (1 + h.latency_delta)
            grid = sorted({0.2, 0.4, slow, 2 * slow})
            slices.append(
                Slice(
                    end - slicing.length,
                    end,
                    SliceCounts(stable_n, 0.0, histogram_with_p99(0.200, stable_n, grid)),
                    SliceCounts(canary_n, canary_n * h.error_rate, histogram_with_p99(slow, canary_n, grid)),
                )
            )
        snapshot = summarize(target, slices, since=begin, at=now, quantile=0.99, age=None)
        return StepHistory(target, weight, begin, now, tuple(slices), snapshot, slicing.scrape_interval)

    async def is_online(self) -> bool:
        return True


def make_spec(**sections: dict[str, object]) -> RolloutSpec:
    """A spec with settings overridden per section, e.g. ``make_spec(breaker={"warmup_seconds": 0})``."""
    return RolloutSpec("payment-api", TARGET, Settings().merged(sections))
