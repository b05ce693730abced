"""Known releases, recorded: the data the replay tests load into Prometheus.

Four services, each with one release in a 40-minute range, made by the
simulator's ``World`` at 200 requests per second with a 15 s scrape:

* ``healthy``  — warm-up spikes after each increase; the canary restarts (its
  counters reset) in the middle of the 20 % step;
* ``latency``  — the canary turns 1.6x slower at ``LATENCY_AT``, in its 20 % step;
* ``errors``   — 5 % more errors from ``ERRORS_AT``, in its 10 % step;
* ``gap``      — healthy, but Prometheus scraped nothing for 3 minutes of its 10 % step.

The canary appears 5 minutes into the range (a version appearing mid-range)
and climbs 5, 10, 20, 50 % every 5 minutes, then is removed at 25 minutes.
``truth`` builds, from the generator's own per-scrape counts and the known
schedule, what a live controller would have held at each instant — the oracle
the replay is compared with.
"""

from __future__ import annotations

import math

import numpy as np

from canarypilot.model import Slice, SliceCounts, Snapshot, StepHistory, Target, VersionStats
from canarypilot.replay.synthetic import CANARY, STABLE, History, simulate_history
from canarypilot.sim.scenario import Scenario, parse_scenario
from tests.support.promdata import histogram_quantile

START = 1_700_000_000.0
SPAN = 2400.0
STEP = 15.0
LADDER = ((300.0, 5.0), (600.0, 10.0), (900.0, 20.0), (1200.0, 50.0), (1500.0, 0.0))
LATENCY_AT = 1005.0
ERRORS_AT = 690.0
GAP = (660.0, 840.0)
RESTART_AT = 1050.0
BUCKETS_MS = [10, 25, 50, 75, 100, 150, 200, 250, 300, 400, 500, 750, 1000, 2500, 5000]


def weight(t: float) -> float:
    current = 0.0
    for at, w in LADDER:
        if t >= at:
            current = w
    return current


def scenario(name: str, *events: dict[str, object]) -> Scenario:
    return parse_scenario(
        {
            "name": name,
            "duration_seconds": SPAN,
            "traffic": {"rps": 200},
            "stable": {"latency": {"median_ms": 50, "p99_ms": 160}, "error_rate": 0.001},
            "monitoring": {"scrape_interval_seconds": STEP, "buckets_ms": BUCKETS_MS},
            "events": list(events),
        }
    )


def recorded() -> dict[str, History]:
    warm = {"type": "warmup_spike", "magnitude": 1.8, "decay_seconds": 20}
    specs = {
        "healthy": (scenario("healthy", warm), {"restarts": [(CANARY, RESTART_AT)]}),
        "latency": (
            scenario("latency", {"type": "regression", "at_seconds": LATENCY_AT, "latency_factor": 1.6}),
            {},
        ),
        "errors": (
            scenario("errors", {"type": "regression", "at_seconds": ERRORS_AT, "added_errors": 0.05}),
            {},
        ),
        "gap": (scenario("gap"), {"gaps": [GAP]}),
    }
    out: dict[str, History] = {}
    for seed, (name, (model, extra)) in enumerate(specs.items(), start=1):
        out[name] = simulate_history(
            model, service=name, start=START, seconds=SPAN, weight=weight, seed=seed, **extra
        )
    return out


def truth(history: History, at: float, lag: float) -> StepHistory | None:
    """What a controller that changed the weights itself would have had at ``at``."""
    changes = [START + t for t, _ in LADDER if START + t <= at]
    if not changes:
        return None
    since = changes[-1]
    w = weight(since - START)
    if w <= 0:
        return None
    per_version: dict[str, dict[float, tuple[float, float, np.ndarray]]] = {}
    for version in (STABLE, CANARY):
        rows = history.scrapes.get(version, [])
        kept: dict[float, tuple[float, float, np.ndarray]] = {}
        previous: float | None = None
        for ts, req, err, buckets in rows:
            if previous is not None and ts - previous <= 1.5 * STEP:
                kept[ts - STEP] = (req, err, buckets)  # the slice that scrape closes
            previous = ts
        per_version[version] = kept
    bounds = (*history.bounds, math.inf)
    slices = []
    t = since
    while t + STEP + lag <= at + 1e-9:
        versions = [per_version[v].get(t) for v in (STABLE, CANARY)]
        counts = [
            SliceCounts(None, None, None)
            if row is None
            else SliceCounts(row[0], row[1], tuple(zip(bounds, row[2].tolist(), strict=True)))
            for row in versions
        ]
        slices.append(Slice(t, t + STEP, counts[0], counts[1]))
        t += STEP
    target = Target(history.service)
    stats = [
        _summed(version, [getattr(s, side) for s in slices])
        for version, side in ((STABLE, "stable"), (CANARY, "canary"))
    ]
    newest = max((sl.end for sl in slices if sl.canary.requests is not None), default=since)
    snapshot = Snapshot(target, *stats, at=at, window_seconds=at - since, age_seconds=at - newest)
    return StepHistory(target, w, since, at, tuple(slices), snapshot, STEP)


def _summed(version: str, counts: list[SliceCounts]) -> VersionStats:
    """A version's totals over the step; the p99 by the tests' own histogram_quantile."""
    present = [c for c in counts if c.requests is not None]
    if not present:
        return VersionStats(version)
    requests = sum(c.requests or 0.0 for c in present)
    errors = sum(c.errors or 0.0 for c in present)
    bounds = [b for b, _ in next(c.buckets for c in present if c.buckets)]
    totals = [sum(c.buckets[i][1] for c in present if c.buckets) for i in range(len(bounds))]
    pairs = tuple(zip(bounds, totals, strict=True))
    return VersionStats(
        version,
        p99_seconds=histogram_quantile(0.99, pairs),
        error_rate=errors / requests if requests else math.nan,
        requests=requests,
        latency_buckets=pairs,
    )
