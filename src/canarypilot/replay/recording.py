"""What Prometheus recorded for one version, scrape by scrape: calibrate's input.

Calibrate measures jitter from one scrape to the next, finer than the live
analysis' slices, so it reads the raw samples of three signals (request
counters, error counters, latency buckets) and turns them into *increases per
scrape-sized slice*: slice ``k`` covers ``[origin + k*step, origin + (k+1)*step)``, where
``step`` is the scrape interval and ``origin`` sits on the scrapes' phase, so
the increase between two consecutive scrapes is exactly the traffic of one
slice, with no extrapolation.

* A counter that went down was reset (the process restarted): the new value is
  the increase since the reset, as ``increase()`` counts it.
* Two scrapes further apart than 1.5 steps are a gap: what happened in between
  cannot be placed in time, so the slices of the gap are *missing* (``NaN``),
  never zero.
* The first sample of a series (a version appearing mid-range) only starts
  the series: its value accumulated before anyone was watching.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from canarypilot._exceptions import ConfigError

#: Raw samples of one series: ``(timestamp_seconds, value)``, oldest first.
Samples = Sequence[tuple[float, float]]
#: A labelled series as the store returned it.
RawSeries = tuple[Mapping[str, str], Samples]

#: Scrapes further apart than this many steps leave a gap.
GAP_STEPS = 1.5


@dataclass(frozen=True, slots=True, eq=False)
class VersionCounts:
    """One version's increases per slice; ``NaN`` where it has no data.

    ``buckets`` has one row per slice and one column per bound of
    ``Recording.bounds`` (cumulative, ``+Inf`` last), or is ``None`` when the
    version has no histogram.
    """

    requests: np.ndarray
    errors: np.ndarray
    buckets: np.ndarray | None

    def present(self) -> np.ndarray:
        """Which slices have request data."""
        present: np.ndarray = ~np.isnan(self.requests)
        return present


@dataclass(frozen=True, slots=True, eq=False)
class Recording:
    """Increases per slice of every version of one service over ``[start, end)``."""

    service: str
    origin: float
    step: float
    slices: int
    bounds: tuple[float, ...]
    versions: Mapping[str, VersionCounts]

    @property
    def end(self) -> float:
        return self.origin + self.slices * self.step

    def edge(self, k: int) -> float:
        """The start of slice ``k`` (``edge(k + 1)`` is its end)."""
        return self.origin + k * self.step

    def counts(self, version: str) -> VersionCounts:
        try:
            return self.versions[version]
        except KeyError:
            known = ", ".join(sorted(self.versions)) or "none"
            raise ConfigError(
                f"no data for version {version!r} of {self.service!r} in the range (versions seen: {known})"
            ) from None


def scrape_step(series: Iterable[Samples]) -> float:
    """The scrape interval: the median gap between consecutive samples, to the millisecond."""
    gaps = [b[0] - a[0] for samples in series for a, b in zip(samples, samples[1:], strict=False)]
    if not gaps:
        raise ConfigError("too few samples in the range to tell the scrape interval (need two per series)")
    return round(float(np.median(gaps)), 3)


def scrape_phase(series: Iterable[Samples], step: float) -> float:
    """Where in ``[0, step)`` the scrapes fall (their circular median), so slices end on scrapes."""
    stamps = np.array([ts for samples in series for ts, _ in samples[:200]])
    if stamps.size == 0:
        return 0.0
    angles = (stamps % step) / step * 2 * math.pi
    mean = math.atan2(float(np.sin(angles).mean()), float(np.cos(angles).mean()))
    return (mean / (2 * math.pi) * step) % step


def build_recording(
    service: str,
    *,
    start: float,
    end: float,
    requests: Sequence[RawSeries],
    errors: Sequence[RawSeries],
    buckets: Sequence[RawSeries],
    version_label: str = "version",
    step: float | None = None,
) -> Recording:
    """Slice raw samples of the three signals, per version, on one grid over ``[start, end)``."""
    if end <= start:
        raise ConfigError("the end of the range must be after its start")
    everything = [s for _, s in (*requests, *errors, *buckets)]
    step = step or scrape_step(everything)
    phase = scrape_phase(everything, step)
    origin = phase + math.floor((start - phase) / step) * step
    slices = max(1, math.ceil((end - origin) / step))
    bounds = _bounds(buckets)
    by_version: dict[str, dict[str, list[RawSeries]]] = {}
    for signal, rows in (("requests", requests), ("errors", errors), ("buckets", buckets)):
        for labels, samples in rows:
            version = labels.get(version_label)
            if version:
                by_version.setdefault(version, {}).setdefault(signal, []).append((labels, samples))
    grid = _Grid(origin, step, slices)
    versions: dict[str, VersionCounts] = {}
    for version, signals in sorted(by_version.items()):
        if not signals.get("requests"):
            continue
        req = grid.increases([s for _, s in signals["requests"]])
        err = grid.increases([s for _, s in signals.get("errors", [])])
        # A version without error series but with requests served no errors in those slices.
        err = np.where(np.isnan(req), np.nan, np.nan_to_num(err, nan=0.0))
        hist = _histogram(grid, signals.get("buckets", []), bounds)
        versions[version] = VersionCounts(req, err, hist)
    return Recording(service, origin, step, slices, bounds, versions)


@dataclass(frozen=True, slots=True)
class _Grid:
    origin: float
    step: float
    slices: int

    def increases(self, series: Sequence[Samples]) -> np.ndarray:
        """The summed increase of ``series`` per slice (``NaN`` where none had a pair of scrapes)."""
        total = np.zeros(self.slices)
        seen = np.zeros(self.slices, dtype=bool)
        for samples in series:
            if len(samples) < 2:
                continue
            arr = np.asarray(samples, dtype=float)
            ts, values = arr[:, 0], arr[:, 1]
            ok = ~np.isnan(values)  # staleness markers end a series
            ts, values = ts[ok], values[ok]
            dt = np.diff(ts)
            dv = np.diff(values)
            dv = np.where(dv < 0, values[1:], dv)  # a reset restarts the counter from zero
            index = np.rint((ts[1:] - self.origin) / self.step).astype(np.int64) - 1
            keep = (dt <= GAP_STEPS * self.step) & (index >= 0) & (index < self.slices)
            np.add.at(total, index[keep], dv[keep])
            seen[index[keep]] = True
        total[~seen] = np.nan
        return total


def _bounds(buckets: Sequence[RawSeries]) -> tuple[float, ...]:
    found = {_le(labels.get("le", "")) for labels, _ in buckets}
    found.discard(None)
    return tuple(sorted(b for b in found if b is not None))


def _le(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return None if math.isnan(value) else value


def _histogram(grid: _Grid, rows: Sequence[RawSeries], bounds: tuple[float, ...]) -> np.ndarray | None:
    if not rows or not bounds or bounds[-1] != math.inf:
        return None
    out = np.full((grid.slices, len(bounds)), np.nan)
    for column, bound in enumerate(bounds):
        series = [s for labels, s in rows if _le(labels.get("le", "")) == bound]
        if series:
            out[:, column] = grid.increases(series)
    # Rows missing the +Inf bucket have no total: not a histogram for that slice.
    out[np.isnan(out[:, -1])] = np.nan
    # Cumulative buckets can only grow with the bound; scrapes torn between buckets cannot.
    return np.maximum.accumulate(np.nan_to_num(out, nan=0.0), axis=1) + np.where(
        np.isnan(out[:, -1:]), np.nan, 0.0
    )
