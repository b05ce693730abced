"""The five demo scenarios: how each version behaves, and what the rollout must conclude.

A scenario is two ``Behaviour`` values (stable and canary) and the outcome a
correct controller reaches. ``Pacing`` compresses the article's minutes-long
schedule into seconds so that a whole rollout fits in a couple of minutes on a
laptop, while keeping the ratios that make the decisions meaningful: every
analysis window holds more than ``min_canary_requests`` canary requests at the
first weight, the breaker's warm-up grace outlasts a cache warm-up spike, and
the metrics lag covers a scrape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from canarypilot._exceptions import ConfigError
from canarypilot.policy import InterpolationPolicy, SLOPolicy

_FIRST_WEIGHT = InterpolationPolicy().min_weight
_MIN_CANARY_REQUESTS = SLOPolicy().min_canary_requests


class Expected(StrEnum):
    """The outcome a scenario must reach for the demo to exit 0."""

    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"


@dataclass(frozen=True, slots=True)
class Behaviour:
    """How one version answers requests.

    Service times are ``latency_ms`` plus or minus ``jitter`` (a fraction, with a
    triangular spread, so the p99 is stable even over a few hundred requests).
    """

    latency_ms: float = 60.0
    jitter: float = 0.25
    error_rate: float = 0.001
    #: Latency multiplier right after the version's share of traffic changes
    #: (cold caches); it decays linearly to 1 over ``warmup_spike_seconds``.
    warmup_factor: float = 1.0
    warmup_spike_seconds: float = 0.0
    #: Share of the demo's total request rate the version's connection pool can
    #: serve; above it requests wait for a connection and many time out with 503.
    knee_share: float | None = None


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    summary: str
    expected: Expected
    stable: Behaviour = field(default_factory=Behaviour)
    canary: Behaviour = field(default_factory=Behaviour)


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "healthy",
            "the canary behaves like the stable version: it is promoted step by step",
            Expected.PROMOTED,
            canary=Behaviour(latency_ms=58.0),
        ),
        Scenario(
            "latency-regression",
            "the canary's p99 is ~25% slower than stable's: two violations in a row roll it back",
            Expected.ROLLED_BACK,
            canary=Behaviour(latency_ms=75.0),
        ),
        Scenario(
            "error-regression",
            "the canary fails 8% of requests: a severe error violation rolls it back at once",
            Expected.ROLLED_BACK,
            canary=Behaviour(error_rate=0.08),
        ),
        Scenario(
            "warmup-spike",
            "a healthy canary whose cold cache doubles its latency for a few seconds after each "
            "weight change: the breaker's warm-up grace lets it through, and it is promoted",
            Expected.PROMOTED,
            canary=Behaviour(warmup_factor=2.5, warmup_spike_seconds=4.0),
        ),
        Scenario(
            "capacity-knee",
            "the canary is fine at low weight but its connection pool is exhausted above ~30% of "
            "the traffic (503s, slow requests): it is rolled back when the weight crosses the knee",
            Expected.ROLLED_BACK,
            canary=Behaviour(knee_share=0.30),
        ),
    )
}


def scenario(name: str) -> Scenario:
    """The scenario called ``name``, or a ConfigError listing the known ones."""
    try:
        return SCENARIOS[name]
    except KeyError:
        raise ConfigError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}") from None


@dataclass(frozen=True, slots=True)
class Pacing:
    """The compressed timings of one demo run.

    ``duration`` is roughly how long a rollout that promotes without a hold
    takes; every other number follows from it, the request rate and the scrape
    interval. After each weight change the controller waits ``pause`` seconds,
    then judges the last ``window`` seconds (never reaching back before the
    change plus ``lag``); a hold re-analyses ``recheck`` seconds later. The
    breaker's warm-up grace covers the first analysis after a change but not
    the re-check, so a warm-up spike is forgiven once and a real regression is
    not.
    """

    duration: float = 60.0
    rps: float = 300.0
    scrape_interval: float = 1.0
    steps: int = 4

    def __post_init__(self) -> None:
        if not 30 <= self.duration <= 3600:
            raise ConfigError(f"duration {self.duration:g}s must be between 30 and 3600 seconds")
        if not 100 <= self.rps <= 2000:
            raise ConfigError(f"request rate {self.rps:g}/s must be between 100 and 2000")
        first = self.rps * _FIRST_WEIGHT / 100 * self.window
        if first < _MIN_CANARY_REQUESTS:
            raise ConfigError(
                f"at {self.rps:g} requests/s a {self.window:g}s analysis window holds only {first:.0f} "
                f"canary requests at {_FIRST_WEIGHT:g}%, fewer than the {_MIN_CANARY_REQUESTS:g} the "
                "judge needs: raise the request rate or the duration"
            )

    @property
    def pause(self) -> float:
        """Seconds from a weight change to its analysis (the article's 60-180 s, compressed)."""
        return max(8.0, self.duration / self.steps)

    @property
    def lag(self) -> float:
        """How far the metrics trail the traffic: two scrapes."""
        return 2 * self.scrape_interval

    @property
    def window(self) -> float:
        """Analysis window: 15 s, longer when the rate is low (it must hold ``min_canary_requests``
        canary requests at the first weight), never reaching back before the last change."""
        wanted = 1.2 * _MIN_CANARY_REQUESTS / (self.rps * _FIRST_WEIGHT / 100)
        return min(max(15.0, wanted), self.pause - self.lag)

    @property
    def recheck(self) -> float:
        """While holding, analyse again after this long."""
        return max(5.0, self.pause / 3)

    @property
    def warmup_grace(self) -> float:
        """The breaker's grace after a weight change: the first analysis, not the re-check."""
        return self.pause + self.recheck / 2

    @property
    def lead(self) -> float:
        """Users arrive this long before the rollout starts, so the metrics have a baseline."""
        return 3 * self.scrape_interval

    @property
    def deadline(self) -> float:
        """The run is stopped (and fails) if the rollout has not finished by then."""
        return 3 * self.duration + 60

    def settings_overrides(self) -> dict[str, Any]:
        """The ``Settings`` sections this pacing changes (merged over the defaults)."""
        return {
            "query": {
                "window": f"{int(self.window)}s",
                # Slices of a few scrapes: enough of them in each pause to judge separate windows.
                "slice_seconds": max(2 * self.scrape_interval, self.pause / 8),
                "scrape_interval_seconds": self.scrape_interval,
            },
            "scrape": {"interval_seconds": self.scrape_interval},
            # The engine's two time constants, compressed like the pauses: the longest transient
            # that cannot roll back alone and the longest warm-up forgiven (20 s and 180 s at
            # the article's pace).
            "slo": {"max_transient_seconds": self.pause / 2, "max_warmup_seconds": 3 * self.pause},
            "breaker": {
                "warmup_seconds": self.warmup_grace,
                "metrics_outage_seconds": max(30.0, 2 * self.pause),
            },
            "rollout": {
                "pauses_seconds": [self.pause] * self.steps,
                "scrape_lag_seconds": self.lag,
                "min_window_seconds": min(self.window, 2 * self.lag),
                "analysis_interval_seconds": self.recheck,
            },
        }


#: ``--fast``: the CI preset; real servers and real traffic, shorter pauses.
FAST = Pacing(duration=40.0)
