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
``change_before`` is the known schedule: what the controller that made the
changes knew, and what the live oracle of the tests is given.
"""

from __future__ import annotations

from canarypilot.replay.synthetic import CANARY, History, simulate_history
from canarypilot.sim.scenario import Scenario, parse_scenario

START = 1_700_000_000.0
SPAN = 2400.0
STEP = 15.0
LADDER = ((300.0, 5.0), (600.0, 10.0), (900.0, 20.0), (1200.0, 50.0), (1500.0, 0.0))
RELEASE_END = 1500.0
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


def change_before(at: float) -> tuple[float, float] | None:
    """The last weight change at or before ``at``: (when, weight); ``None`` before the canary."""
    changes = [(START + t, w) for t, w in LADDER if START + t <= at]
    return changes[-1] if changes else None
