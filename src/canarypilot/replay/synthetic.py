"""Recorded history made by the simulator: known parameters in, Prometheus samples out.

For the tests and the benchmark of replay and calibrate, and for trying them
without a production Prometheus.

``simulate_history`` runs the simulator's ``World`` (the same draws the bench
uses) for hours of traffic at a weight schedule of our choosing and records what
each version's client library would have exposed at every scrape: cumulative
``http_requests_total{code}`` and ``http_request_duration_seconds_bucket{le}``.
Gaps (scrapes that never happened) and restarts (counters back to zero) can be
injected. The samples go to Prometheus through promtool
(``canarypilot.local.prometheus.openmetrics_text``); the per-scrape counts are
kept as ground truth.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from canarypilot.sim.scenario import Scenario
from canarypilot.sim.world import World

STABLE, CANARY = "v1-stable", "v2-canary"
TYPES = {"http_requests": "counter", "http_request_duration_seconds": "histogram"}


@dataclass
class _Counters:
    ok: float = 0.0
    errors: float = 0.0
    buckets: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def reset(self) -> None:
        self.ok = self.errors = 0.0
        self.buckets = np.zeros_like(self.buckets)


@dataclass
class History:
    """What was recorded; ``scrapes[version]`` holds ``(ts, requests, errors, buckets)`` per
    scrape (increases since the previous scrape of that version, the truth)."""

    service: str
    bounds: tuple[float, ...]
    samples: list[tuple[str, dict[str, str], float, float]] = field(default_factory=list)
    scrapes: dict[str, list[tuple[float, float, float, np.ndarray]]] = field(default_factory=dict)


def simulate_history(
    scenario: Scenario,
    *,
    service: str,
    start: float,
    seconds: float,
    weight: Callable[[float], float],
    seed: int = 1,
    tick: float = 5.0,
    gaps: Sequence[tuple[float, float]] = (),
    restarts: Sequence[tuple[str, float]] = (),
) -> History:
    """Traffic from ``start`` for ``seconds``; ``weight(t)`` is the canary's percentage at
    ``t`` seconds in (0: not deployed, no canary series at all). ``gaps`` are ``[from, to)``
    stretches (seconds in) without scrapes; ``restarts`` reset a version's counters at a time."""
    world = World(scenario, seed)
    step = scenario.monitoring.scrape_interval_seconds
    bounds = scenario.monitoring.buckets_seconds
    history = History(service, bounds)
    counters = {v: _Counters(buckets=np.zeros(len(bounds) + 1)) for v in (STABLE, CANARY)}
    last = {v: (0.0, 0.0, np.zeros(len(bounds) + 1)) for v in (STABLE, CANARY)}
    pending_restarts = sorted(restarts, key=lambda r: r[1])
    t = 0.0
    while t <= seconds + 1e-9:
        # Scrape at t: what the counters hold after the traffic of [t - step, t).
        scraped = not any(a <= t < b for a, b in gaps)
        for version in (STABLE, CANARY):
            if version == CANARY and weight(t) <= 0 and weight(t - step) <= 0:
                continue  # no canary deployed: no canary series
            c = counters[version]
            if scraped:
                _record(history, service, version, start + t, c, bounds)
                ok, err, buckets = last[version]
                history.scrapes.setdefault(version, []).append(
                    (start + t, c.ok + c.errors - ok - err, c.errors - err, np.cumsum(c.buckets - buckets))
                )
                last[version] = (c.ok, c.errors, c.buckets.copy())
        while pending_restarts and pending_restarts[0][1] <= t:
            version, _ = pending_restarts.pop(0)
            counters[version].reset()
            last[version] = (0.0, 0.0, np.zeros(len(bounds) + 1))
        for k in range(round(step / tick)):
            now = t + k * tick
            stable, canary = world.tick(now, tick, weight(now))
            for version, served in ((STABLE, stable), (CANARY, canary)):
                c = counters[version]
                c.ok += served.requests - served.errors
                c.errors += served.errors
                c.buckets = c.buckets + served.buckets
        t += step
    return history


def _record(
    history: History, service: str, version: str, ts: float, c: _Counters, bounds: tuple[float, ...]
) -> None:
    base = {"job": service, "version": version}
    out = history.samples
    out.append(("http_requests_total", {**base, "code": "200"}, ts, c.ok))
    out.append(("http_requests_total", {**base, "code": "500"}, ts, c.errors))
    cumulative = np.cumsum(c.buckets)
    for bound, count in zip((*bounds, math.inf), cumulative, strict=True):
        le = "+Inf" if math.isinf(bound) else repr(float(bound))
        out.append(("http_request_duration_seconds_bucket", {**base, "le": le}, ts, float(count)))
    out.append(("http_request_duration_seconds_count", base, ts, float(cumulative[-1])))


def series_of(history: History) -> Iterator[tuple[str, dict[str, str], list[tuple[float, float]]]]:
    """The samples grouped per series, as a range query returns them."""
    grouped: dict[tuple[str, tuple[tuple[str, str], ...]], list[tuple[float, float]]] = {}
    for name, labels, ts, value in history.samples:
        grouped.setdefault((name, tuple(sorted(labels.items()))), []).append((ts, value))
    for (metric, pairs), samples in grouped.items():
        yield metric, dict(pairs), samples
