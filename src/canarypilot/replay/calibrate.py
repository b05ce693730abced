"""Fitting the simulator's model of a service to what its stable version recorded.

From the slices of one version (``recording.py``):

* **rate** — mean requests per second over the slices with data, and its
  **daily shape**: the mean per UTC hour of the day over the overall mean;
* **latency** — a log-normal fitted by maximum likelihood to the histogram's
  bucket counts with the *real* bucket bounds (each request is only known to
  lie between two bounds: an interval-censored fit, not a fit to interpolated
  quantiles), on the slices outside stalls;
* **jitter** — each slice's own log-median (the same likelihood with the
  shape held), and the spread of its slice-to-slice changes (median absolute
  deviation, so stalls do not count) minus what the slice's sample size alone
  explains. The simulator draws its jitter per 5 s tick, and a slice mixes
  ``step / 5`` ticks, so the scenario's ``latency_jitter`` is the slice jitter
  times ``sqrt(step / 5)``;
* **stalls** — runs of slices whose log-median is above the baseline by more
  than ``max(log 1.5, 6 jitters)``: how often (per hour), how much slower (the
  episode's peak factor) and how long (slices weighted by how much of the peak
  they reached);
* **error rate** — errors over requests.

The simulator's noise spikes strike one version at a time, so stalls seen on
stable at ``f`` per hour become ``2 f`` spikes per hour in the scenario.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from canarypilot._exceptions import ConfigError
from canarypilot.replay.recording import Recording

_Z99 = 2.3263478740408408
#: The simulator's tick (``sim.engine.TICK_SECONDS``): its jitter is drawn once per tick.
SIM_TICK_SECONDS = 5.0
#: Least number of slices with a histogram for a fit worth writing down.
MIN_SLICES = 40
#: Relative efficiency of a bucketed median against an exact one: sampling variance factor.
_BUCKET_VARIANCE = 1.3


@dataclass(frozen=True, slots=True)
class Fit:
    """What calibrate recovered from one version's history."""

    service: str
    version: str
    step_seconds: float
    hours: float
    rps: float
    #: Mean rate per UTC hour of day over ``rps``; ``None`` for hours without data.
    daily_shape: tuple[float | None, ...]
    median_ms: float
    p99_ms: float
    error_rate: float
    #: Slice-to-slice jitter of the log-median (per slice of ``step_seconds``).
    slice_jitter: float
    #: The same, as the simulator's per-tick ``noise.latency_jitter``.
    latency_jitter: float
    stalls_per_hour: float
    stall_factor: float
    stall_seconds: float
    bounds_ms: tuple[float, ...]

    @property
    def peak_rps(self) -> float:
        return self.rps * max((s for s in self.daily_shape if s is not None), default=1.0)

    @property
    def trough_rps(self) -> float:
        return self.rps * min((s for s in self.daily_shape if s is not None), default=1.0)

    def to_dict(self) -> dict[str, object]:
        return {
            "service": self.service,
            "version": self.version,
            "step_seconds": self.step_seconds,
            "hours": round(self.hours, 3),
            "rps": self.rps,
            "peak_rps": self.peak_rps,
            "trough_rps": self.trough_rps,
            "daily_shape": [None if s is None else round(s, 4) for s in self.daily_shape],
            "median_ms": self.median_ms,
            "p99_ms": self.p99_ms,
            "error_rate": self.error_rate,
            "slice_jitter": self.slice_jitter,
            "latency_jitter": self.latency_jitter,
            "stalls_per_hour": self.stalls_per_hour,
            "stall_factor": self.stall_factor,
            "stall_seconds": self.stall_seconds,
            "bounds_ms": list(self.bounds_ms),
        }


def fit(recording: Recording, version: str) -> Fit:
    """Fit the scenario parameters of ``version`` (normally stable) from its recorded slices."""
    counts = recording.counts(version)
    if counts.buckets is None:
        raise ConfigError(f"{version!r} has no latency histogram in the range: nothing to fit latency to")
    ok = counts.present() & ~np.isnan(counts.buckets[:, -1]) & (counts.buckets[:, -1] > 0)
    if int(ok.sum()) < MIN_SLICES:
        raise ConfigError(
            f"only {int(ok.sum())} slices of {version!r} with traffic in the range; "
            f"calibrate needs at least {MIN_SLICES} ({MIN_SLICES * recording.step:g} s)"
        )
    step = recording.step
    requests = counts.requests[ok]
    rps = float(requests.sum() / (ok.sum() * step))
    bounds = np.array(recording.bounds)
    per_bucket = np.diff(counts.buckets[ok], axis=1, prepend=0.0)
    mu_all, sigma_all = _lognormal(per_bucket.sum(axis=0), bounds)
    slice_mu = _slice_medians(per_bucket, bounds, sigma_all, mu_all)
    steps = np.diff(slice_mu)
    mad = float(np.median(np.abs(steps - np.median(steps))))
    raw = (1.4826 * mad) ** 2 / 2
    sampling = float(np.mean(_BUCKET_VARIANCE * sigma_all**2 * (math.pi / 2) / np.maximum(requests, 1)))
    slice_jitter = math.sqrt(max(0.0, raw - sampling))
    baseline = float(np.median(slice_mu))
    excess = slice_mu - baseline
    threshold = max(math.log(1.5), 6 * slice_jitter)
    stalled = excess > threshold
    episodes = _episodes(stalled)
    hours = float(ok.sum() * step / 3600)
    peaks = [float(excess[a:b].max()) for a, b in episodes]
    durations = [float((np.clip(excess[a:b] / excess[a:b].max(), 0, 1)).sum() * step) for a, b in episodes]
    calm = per_bucket[~stalled].sum(axis=0)
    mu, sigma_mix = _lognormal(calm, bounds)
    tick_jitter = slice_jitter * math.sqrt(max(1.0, step / SIM_TICK_SECONDS))
    sigma = math.sqrt(max(sigma_mix**2 - tick_jitter**2, (0.05 * sigma_mix) ** 2))
    errors = counts.errors[ok]
    return Fit(
        service=recording.service,
        version=version,
        step_seconds=step,
        hours=hours,
        rps=rps,
        daily_shape=_daily_shape(recording, ok, counts.requests, rps),
        median_ms=math.exp(mu) * 1000,
        p99_ms=math.exp(mu + _Z99 * sigma) * 1000,
        error_rate=float(np.nansum(errors) / requests.sum()),
        slice_jitter=slice_jitter,
        latency_jitter=tick_jitter,
        stalls_per_hour=len(episodes) / hours,
        stall_factor=math.exp(float(np.median(peaks))) if peaks else 1.0,
        stall_seconds=float(np.median(durations)) if durations else 0.0,
        bounds_ms=tuple(float(b) * 1000 for b in recording.bounds if math.isfinite(b)),
    )


def _phi(z: np.ndarray) -> np.ndarray:
    from math import erf

    cdf: np.ndarray = 0.5 * (1 + np.vectorize(erf)(z / math.sqrt(2)))
    return cdf


def _cell_probabilities(bounds: np.ndarray, mu: np.ndarray, sigma: float) -> np.ndarray:
    """P(request in bucket j) for each ``mu``: rows are mus, columns the buckets (``+Inf`` last)."""
    finite = np.log(bounds[:-1])
    cdf = _phi((finite[None, :] - mu[:, None]) / sigma)
    cells = np.diff(np.concatenate([np.zeros((len(mu), 1)), cdf, np.ones((len(mu), 1))], axis=1), axis=1)
    return np.clip(cells, 1e-300, 1.0)


def _lognormal(cells: np.ndarray, bounds: np.ndarray) -> tuple[float, float]:
    """Maximum-likelihood (mu, sigma) of a log-normal from bucket counts (``+Inf`` last)."""
    if len(bounds) < 3:
        raise ConfigError("the latency histogram needs at least two finite buckets to fit")
    cdf = np.cumsum(cells)[:-1] / cells.sum()
    guess = float(np.log(bounds[:-1][np.argmin(np.abs(cdf - 0.5))]))
    best = (-math.inf, guess, 0.5)
    mu_span, sigma_span = 2.0, (0.02, 3.0)
    for _ in range(4):  # a grid, refined around the best point four times
        mus = np.linspace(best[1] - mu_span, best[1] + mu_span, 81)
        for sigma in np.geomspace(*sigma_span, 61):
            ll = (cells[None, :] * np.log(_cell_probabilities(bounds, mus, float(sigma)))).sum(axis=1)
            i = int(np.argmax(ll))
            if ll[i] > best[0]:
                best = (float(ll[i]), float(mus[i]), float(sigma))
        mu_span /= 8
        sigma_span = (best[2] / 1.3, best[2] * 1.3)
    return best[1], best[2]


def _slice_medians(per_bucket: np.ndarray, bounds: np.ndarray, sigma: float, centre: float) -> np.ndarray:
    """Each slice's maximum-likelihood log-median with the shape ``sigma`` held."""
    offsets = np.arange(-1.5, 3.0, 0.004)
    mus = centre + offsets
    log_p = np.log(_cell_probabilities(bounds, mus, sigma))  # (grid, buckets)
    ll = per_bucket @ log_p.T  # (slices, grid)
    return np.asarray(mus[np.argmax(ll, axis=1)])


def _episodes(flags: np.ndarray) -> list[tuple[int, int]]:
    """``[start, end)`` index pairs of the runs of ``True``."""
    padded = np.concatenate([[False], flags, [False]]).astype(np.int8)
    edges = np.diff(padded)
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=True))


def _daily_shape(
    recording: Recording, ok: np.ndarray, requests: np.ndarray, rps: float
) -> tuple[float | None, ...]:
    starts = recording.origin + np.arange(recording.slices) * recording.step
    hours = ((starts % 86_400) // 3600).astype(int)
    shape: list[float | None] = []
    for hour in range(24):
        mask = ok & (hours == hour)
        if mask.sum() < 4:
            shape.append(None)
        else:
            shape.append(float(requests[mask].sum() / (mask.sum() * recording.step) / rps))
    return tuple(shape)
