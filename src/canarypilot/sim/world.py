"""The simulated service: the requests each version serves, second by second.

Simulating every request would be too slow for a bench of thousands of
rollouts, so each tick draws the *counts* instead: how many requests arrive
(Poisson), how many go to the canary (binomial at the router's weight), how
many fail (binomial) and how they fall into the histogram buckets (multinomial
over the log-normal's bucket probabilities). The histograms are therefore
exactly what a real client library would have counted; only the individual
latencies are never materialised.

Every random draw comes from one ``numpy`` generator seeded per run, and the
random events (noise spikes) are drawn up front, so a seed replays exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from canarypilot.sim.scenario import Scenario, VersionModel

STABLE, CANARY = 0, 1

# The standard normal CDF on a fine grid: np.interp on it is vectorised and within
# 1e-7 of the exact value, which is all a multinomial draw needs.
_Z = np.linspace(-12.0, 12.0, 48_001)
_PHI = np.array([0.5 * math.erfc(-z / math.sqrt(2.0)) for z in _Z])


@dataclass(slots=True)
class Served:
    """What one version served during one tick."""

    requests: int
    errors: int
    #: Non-cumulative counts per bucket edge of the monitoring buckets, plus one for +Inf.
    buckets: np.ndarray
    latency_sum: float
    #: Errors plus successful requests slower than the scenario's SLO.
    bad: int


@dataclass(frozen=True, slots=True)
class CanaryTruth:
    """What the canary's requests of one tick were drawn from (for the oracle strategy).

    ``healthy_*`` is what a healthy canary would have had at that moment (warm-up,
    bursts, stalls, jitter, noise); the canary's own model and its degradation
    (regressions, ramps, knees) come on top.
    """

    served: Served
    healthy_factor: float
    healthy_errors: float
    degraded_factor: float
    degraded_errors: float
    degraded: bool


class World:
    """Draws the traffic of each tick from the scenario, for a given canary weight.

    ``t`` is seconds since the rollout started.
    """

    def __init__(self, scenario: Scenario, seed: int) -> None:
        self.scenario = scenario
        self.rng = np.random.default_rng(seed)
        buckets = scenario.monitoring.buckets_seconds
        slo = scenario.slo_latency_ms / 1000
        # Internal edges: the histogram's buckets plus the SLO bound, so "slower than
        # the SLO" is counted exactly even when the SLO is not a bucket bound.
        edges = sorted({*buckets, slo})
        self._log_edges = np.log(np.array(edges))
        self._log_bounds = np.log(np.array(buckets))
        self._applied = (1.0, 0.0)
        self.last_truth: CanaryTruth | None = None
        self._bucket_slots = np.array([edges.index(b) for b in buckets])
        self._slo_slot = edges.index(slo)
        self._last_increase: float | None = None
        self._weight = 0.0
        self.spikes = self._draw_spikes()
        self.episodes = self._draw_episodes()
        self.jitter = self._draw_jitter()

    def _draw_spikes(self) -> list[tuple[float, float, int]]:
        noise = self.scenario.noise
        if noise is None or noise.spikes_per_hour <= 0:
            return []
        spikes: list[tuple[float, float, int]] = []
        t = 0.0
        rate = noise.spikes_per_hour / 3600
        while True:
            t += float(self.rng.exponential(1 / rate))
            if t >= self.scenario.duration_seconds:
                return spikes
            spikes.append((t, t + noise.spike_seconds, int(self.rng.integers(0, 2))))

    def _draw_episodes(self) -> list[tuple[float, float, frozenset[int], float, float]]:
        """Every burst and stall of the run: (start, end, versions, latency factor, errors)."""
        out: list[tuple[float, float, frozenset[int], float, float]] = []
        horizon = self.scenario.duration_seconds
        for ep in self.scenario.episodes:
            who = frozenset({"stable": (STABLE,), "canary": (CANARY,), "both": (STABLE, CANARY)}[ep.versions])
            starts = list(ep.at_seconds)
            if ep.per_hour > 0:
                t = 0.0
                while (t := t + float(self.rng.exponential(3600 / ep.per_hour))) < horizon:
                    starts.append(t)
            out += [(s, s + ep.seconds, who, ep.latency_factor, ep.added_errors) for s in starts]
        return out

    def _draw_jitter(self) -> np.ndarray | None:
        jitter = self.scenario.jitter
        if jitter is None:
            return None
        slots = int(self.scenario.duration_seconds // jitter.interval_seconds) + 2
        return np.exp(self.rng.normal(0.0, jitter.sigma, slots))

    def transient(self, t: float, who: int) -> tuple[float, float]:
        """Latency factor and added errors of the bursts, stalls and shared jitter at ``t``."""
        factor, errors = 1.0, 0.0
        for start, end, versions, f, e in self.episodes:
            if who in versions and start <= t < end:
                factor *= f
                errors += e
        jitter = self.scenario.jitter
        if self.jitter is not None and jitter is not None:
            slot = min(int(t // jitter.interval_seconds), len(self.jitter) - 1)
            factor *= float(self.jitter[slot])
        return factor, errors

    def rps(self, t: float) -> float:
        """Mean total requests per second at ``t`` (traffic dips applied)."""
        rate = self.scenario.rps
        for dip in self.scenario.dips:
            if dip.at_seconds <= t < dip.at_seconds + dip.duration_seconds:
                rate *= dip.factor
        return rate

    def canary_conditions(self, t: float, weight: float) -> tuple[float, float]:
        """The canary's latency factor and added error rate at ``t`` (before transients)."""
        factor, errors = self.degradation(t, weight)
        warm_factor, warm_errors = self.warmup(t)
        return factor * warm_factor, errors + warm_errors

    def degradation(self, t: float, weight: float) -> tuple[float, float]:
        """The latency factor and added errors of the regressions, ramps and knees at ``t``."""
        factor, errors = 1.0, 0.0
        for reg in self.scenario.regressions:
            if t >= reg.at_seconds:
                factor *= reg.latency_factor
                errors += reg.added_errors
        for ramp in self.scenario.ramps:
            share = ramp.share(t)
            factor *= 1 + (ramp.latency_factor - 1) * share
            errors += ramp.added_errors * share
        canary_rps = self.rps(t) * weight / 100
        for knee in self.scenario.knees:
            excess = canary_rps / knee.capacity_rps - 1
            if excess > 0:
                factor *= 1 + knee.latency_slope * excess
                errors += knee.error_slope * excess
        return factor, errors

    def warmup(self, t: float) -> tuple[float, float]:
        """The warm-up's latency factor and added errors at ``t`` (since the last increase)."""
        factor, errors = 1.0, 0.0
        if self._last_increase is not None:
            since = t - self._last_increase
            for spike in self.scenario.warmups:
                fading = math.exp(-since / spike.decay_seconds)
                factor *= 1 + (spike.magnitude - 1) * fading
                errors += spike.added_errors * fading
        return factor, errors

    def canary_is_bad(self, t: float, weight: float) -> bool:
        """Whether the canary is degraded at ``t``: a regression, a knee, or its own lasting
        behaviour (``canary:`` model, ramps) beyond the SLO. Transients and warm-up are not."""
        if self.scenario.beyond_slo(t):
            return True
        for reg in self.scenario.regressions:
            if t >= reg.at_seconds and (reg.latency_factor > 1 or reg.added_errors > 0):
                return True
        canary_rps = self.rps(t) * weight / 100
        return any(canary_rps > knee.capacity_rps for knee in self.scenario.knees)

    def tick(self, t: float, dt: float, weight: float) -> tuple[Served, Served]:
        """Draw the requests of ``[t, t + dt)`` with ``weight`` percent going to the canary."""
        if weight > self._weight:
            self._last_increase = t
        self._weight = weight
        rng = self.rng
        arrivals = int(rng.poisson(self.rps(t) * dt))
        to_canary = (
            int(rng.binomial(arrivals, weight / 100))
            if 0 < weight < 100
            else (arrivals if weight >= 100 else 0)
        )
        d_factor, d_errors = self.degradation(t, weight)
        w_factor, w_errors = self.warmup(t)
        stable = self._serve(self.scenario.stable, arrivals - to_canary, t, STABLE, 1.0, 0.0)
        canary = self._serve(
            self.scenario.canary, to_canary, t, CANARY, d_factor * w_factor, d_errors + w_errors
        )
        applied_factor, applied_errors = self._applied
        self.last_truth = CanaryTruth(
            served=canary,
            healthy_factor=applied_factor / d_factor,
            healthy_errors=applied_errors - d_errors,
            degraded_factor=d_factor,
            degraded_errors=d_errors,
            degraded=self.canary_is_bad(t, weight),
        )
        return stable, canary

    def histogram_probs(self, model: VersionModel, factor: float) -> np.ndarray:
        """The probability of each histogram bucket (and +Inf) for ``model`` slowed by ``factor``."""
        sigma = model.latency.sigma
        mu = math.log(model.latency.median_ms / 1000 * factor)
        cdf = np.interp((self._log_bounds - mu) / sigma, _Z, _PHI)
        return np.diff(cdf, prepend=0.0, append=1.0)

    def _serve(
        self, model: VersionModel, n: int, t: float, who: int, factor: float, added_errors: float
    ) -> Served:
        slots = len(self._bucket_slots) + 1
        self._applied = (factor, added_errors)
        if n == 0:
            return Served(0, 0, np.zeros(slots, dtype=np.int64), 0.0, 0)
        rng = self.rng
        extra_factor, extra_errors = self.transient(t, who)
        factor *= extra_factor
        added_errors += extra_errors
        noise = self.scenario.noise
        if noise is not None:
            if noise.latency_jitter > 0:
                factor *= math.exp(float(rng.normal(0.0, noise.latency_jitter)))
            for start, end, version in self.spikes:
                if version == who and start <= t < end:
                    factor *= noise.spike_factor
        self._applied = (factor, added_errors)
        sigma = model.latency.sigma
        mu = math.log(model.latency.median_ms / 1000 * factor)
        cdf = np.interp((self._log_edges - mu) / sigma, _Z, _PHI)
        probs = np.empty(len(cdf) + 1)
        probs[0] = cdf[0]
        probs[1:-1] = cdf[1:] - cdf[:-1]
        probs[-1] = 1.0 - cdf[-1]
        counts = rng.multinomial(n, probs)
        error_rate = min(1.0, model.error_rate + added_errors)
        errors = int(rng.binomial(n, error_rate)) if error_rate > 0 else 0
        slow = int(counts[self._slo_slot + 1 :].sum())
        slow_ok = int(rng.binomial(slow, 1 - errors / n)) if slow and errors else slow
        # Fold the internal edges back onto the histogram's own buckets.
        cumulative = np.cumsum(counts)
        per_bucket = np.empty(len(self._bucket_slots) + 1, dtype=np.int64)
        at_bounds = cumulative[self._bucket_slots]
        per_bucket[0] = at_bounds[0]
        per_bucket[1:-1] = at_bounds[1:] - at_bounds[:-1]
        per_bucket[-1] = n - at_bounds[-1]
        mean = math.exp(mu + sigma * sigma / 2)
        return Served(n, errors, per_bucket, mean * n, errors + slow_ok)
