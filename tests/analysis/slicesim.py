"""A small seeded world that cuts two versions' requests into slices, for the engine's tests.

Latencies are log-normal (p99 = 3.2 x median, as the simulator's services); each slice's
requests fall into the monitoring buckets by a multinomial draw, so a test sees exactly
what a scrape would. Noise that real services show is built in: per-slice jitter shared
by both versions or the canary's own, stalls that slow every request of one version or
both for some seconds, a warm-up that fades after the weight change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from canarypilot.model import Slice, SliceCounts, Snapshot, StepHistory, Target, VersionStats

EDGES = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0)
SIGMA = 0.5
STABLE_P99 = 0.16
TARGET = Target("api")


@dataclass(frozen=True)
class Stall:
    """Every request of the chosen versions in ``[at, at + seconds)`` is ``factor`` times slower."""

    at: float
    seconds: float
    factor: float = 10.0
    stable: bool = True
    canary: bool = True


@dataclass(frozen=True)
class World:
    rps: float = 100.0
    weight: float = 5.0
    slice_seconds: float = 15.0
    stable_errors: float = 0.005
    latency_factor: float = 1.0
    added_errors: float = 0.0
    shared_jitter: float = 0.0
    canary_jitter: float = 0.0
    stalls: tuple[Stall, ...] = field(default_factory=tuple)
    warmup_factor: float = 1.0
    warmup_decay_seconds: float = 30.0


def _bucket_probs(factor: float) -> np.ndarray:
    median = STABLE_P99 / math.exp(2.326 * SIGMA) * factor
    z = (np.log(np.array(EDGES)) - math.log(median)) / SIGMA
    cdf = 0.5 * (1 + np.vectorize(math.erf)(z / math.sqrt(2)))
    return np.diff(np.concatenate(([0.0], cdf, [1.0])))


def _counts(
    rng: np.random.Generator, n: int, errors: float, factors: list[tuple[float, float]]
) -> SliceCounts:
    """``n`` requests, a share of them at each latency factor (shares sum to 1)."""
    per_bucket = np.zeros(len(EDGES) + 1)
    remaining = n
    for i, (share, factor) in enumerate(factors):
        m = remaining if i == len(factors) - 1 else int(rng.binomial(remaining, min(1.0, share)))
        remaining -= m
        per_bucket += rng.multinomial(m, _bucket_probs(factor))
    cumulative = np.cumsum(per_bucket)
    buckets = tuple(zip((*EDGES, math.inf), (float(c) for c in cumulative), strict=True))
    return SliceCounts(float(n), float(rng.binomial(n, min(1.0, errors))), buckets)


def _stall_share(world: World, start: float, end: float, who: str) -> tuple[float, float]:
    share, factor = 0.0, 1.0
    for stall in world.stalls:
        if not getattr(stall, who):
            continue
        overlap = min(end, stall.at + stall.seconds) - max(start, stall.at)
        if overlap > 0:
            share, factor = share + overlap / (end - start), stall.factor
    return min(1.0, share), factor


def run(world: World, slices: int, rng: np.random.Generator) -> list[Slice]:
    out = []
    for i in range(slices):
        start, end = i * world.slice_seconds, (i + 1) * world.slice_seconds
        arrivals = rng.poisson(world.rps * world.slice_seconds)
        to_canary = int(rng.binomial(arrivals, world.weight / 100))
        shared = math.exp(rng.normal(0, world.shared_jitter)) if world.shared_jitter else 1.0
        own = math.exp(rng.normal(0, world.canary_jitter)) if world.canary_jitter else 1.0
        mid = (start + end) / 2
        warm = 1 + (world.warmup_factor - 1) * math.exp(-mid / world.warmup_decay_seconds)
        c_factor = world.latency_factor * shared * own * warm
        s_share, s_stall = _stall_share(world, start, end, "stable")
        c_share, c_stall = _stall_share(world, start, end, "canary")
        stable = _counts(
            rng, arrivals - to_canary, world.stable_errors, [(s_share, shared * s_stall), (1.0, shared)]
        )
        canary = _counts(
            rng,
            to_canary,
            world.stable_errors + world.added_errors,
            [(c_share, c_factor * c_stall), (1.0, c_factor)],
        )
        out.append(Slice(start, end, stable, canary))
    return out


def history(slices: list[Slice], weight: float = 5.0, lag: float = 0.0) -> StepHistory:
    """The step as the engine sees it after the given slices."""
    at = slices[-1].end + lag if slices else 0.0
    snap = Snapshot(TARGET, VersionStats("v1-stable"), VersionStats("v2-canary"), at, at)
    return StepHistory(TARGET, weight, 0.0, at, tuple(slices), snap)


def expected_counts(n: float, errors: float, factor: float) -> SliceCounts:
    """What ``n`` requests at ``factor`` times stable's latency put in each bucket on average:
    no sampling noise, so a unit test sees the rule, not the dice."""
    cumulative = np.cumsum(n * _bucket_probs(factor))
    buckets = tuple(zip((*EDGES, math.inf), (float(c) for c in cumulative), strict=True))
    return SliceCounts(float(n), n * errors, buckets)


def steady(
    slices: int,
    *,
    canary_factor: float = 1.0,
    canary_errors: float = 0.005,
    canary_n: float = 300.0,
    stable_n: float = 5700.0,
    seconds: float = 15.0,
) -> list[Slice]:
    """Slices of expected counts: stable at its own latency and 0.5 % errors, the canary as given."""
    return [
        Slice(
            i * seconds,
            (i + 1) * seconds,
            expected_counts(stable_n, 0.005, 1.0),
            expected_counts(canary_n, canary_errors, canary_factor),
        )
        for i in range(slices)
    ]
