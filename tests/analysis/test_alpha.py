"""The engine's stated error rate, by simulation: continuous monitoring of healthy canaries.

2,100 healthy steps, each looked at after every slice (15 s), under the noise real
services show: independent requests; per-slice jitter shared by both versions plus the
canary's own; a 20 s stall of both versions or of the canary alone at a random time; a
canary exactly at the latency threshold; one exactly at the error threshold; a busy canary
at 40 %. The share rolled back must stay within ``alpha`` (plus a binomial margin). Then
the power side: regressions the SLO forbids must be rolled back within a bounded number
of slices. Seeded, pure Python apart from numpy's dice.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from slicesim import Stall, World, history, run

from canarypilot.analysis import decide
from canarypilot.model import Action
from canarypilot.policy import Settings

SETTINGS = Settings()
ALPHA = SETTINGS.slo.alpha
SLICES = 12  # 3 minutes of 15 s slices, a look after each
RUNS = 300  # per family; 7 families
SEED = 20261201


def _family(name: str, rng: np.random.Generator) -> World:
    at = float(rng.uniform(0.0, SLICES * 15.0 - 20.0))
    return {
        "independent": World(),
        "jitter": World(shared_jitter=0.25, canary_jitter=0.05),
        "shared stall": World(stalls=(Stall(at, 20.0, 10.0),)),
        "canary stall": World(stalls=(Stall(at, 20.0, 10.0, stable=False),)),
        "latency at the threshold": World(latency_factor=1.15, shared_jitter=0.1),
        "errors at the threshold": World(added_errors=SETTINGS.slo.max_error_delta),
        "busy": World(weight=40.0, shared_jitter=0.1, canary_jitter=0.05),
    }[name]


FAMILIES = (
    "independent",
    "jitter",
    "shared stall",
    "canary stall",
    "latency at the threshold",
    "errors at the threshold",
    "busy",
)


def rolled_back(world: World, rng: np.random.Generator, slices: int) -> int | None:
    """After how many slices ``decide`` first said rollback (``None``: never), looking after each."""
    seen = run(world, slices, rng)
    for t in range(1, slices + 1):
        if decide(history(seen[:t], world.weight), SETTINGS).action is Action.ROLLBACK:
            return t
    return None


def test_healthy_canaries_are_rolled_back_at_most_alpha_of_the_time_however_often_looked_at() -> None:
    rng = np.random.default_rng(SEED)
    false = {name: 0 for name in FAMILIES}
    for name in FAMILIES:
        for _ in range(RUNS):
            if rolled_back(_family(name, rng), rng, SLICES) is not None:
                false[name] += 1
    total = RUNS * len(FAMILIES)
    allowed = ALPHA * total + 3 * math.sqrt(ALPHA * (1 - ALPHA) * total)
    assert sum(false.values()) <= allowed, false
    # and no single kind of noise takes more than its share of it
    per_family = ALPHA * RUNS + 3 * math.sqrt(ALPHA * (1 - ALPHA) * RUNS)
    assert max(false.values()) <= per_family, false


@pytest.mark.parametrize(
    ("world", "within"),
    [
        (World(weight=40.0, latency_factor=1.5), 20),  # +50 % p99 at 40 % of 100 rps
        (World(weight=40.0, added_errors=0.03), 36),  # +3 error points
        (World(weight=5.0, latency_factor=2.0), 20),  # a 2x p99 on 5 requests/s
        (World(weight=5.0, added_errors=0.5), 6),  # half the canary's requests fail
    ],
    ids=["p99+50%", "errors+3pts", "p99x2-low-traffic", "errors+50pts"],
)
def test_regressions_beyond_the_slo_are_rolled_back_within_a_bounded_number_of_slices(
    world: World, within: int
) -> None:
    rng = np.random.default_rng(SEED + 1)
    found = [rolled_back(world, rng, within) for _ in range(40)]
    assert sum(f is not None for f in found) >= 36, found
