"""Counters whose every slice holds different, known counts: the truth for step histories.

Each scrape interval draws its own requests, errors and latency classes; the counters
and histogram buckets are their running sums. The truth of a slice is the sum of the
draws of the intervals inside it, computed here from the draws, never from the
counters, so it is independent of both PromQL and canarypilot's arithmetic. Slices
and scrapes align on multiples of ``SLICE`` seconds, where Prometheus 2.x's closed
ranges hold a sample at both edges and ``increase`` needs no extrapolation.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

SLICE = 60.0
END = 1_700_000_040.0  # a multiple of SLICE
SPAN = 1200.0
STEP_START = END - 600.0  # checkout's canary goes from ~5 % to ~25 % of requests here
BOUNDS = (0.05, 0.1, 0.25, 0.5, math.inf)
LATENCIES = (0.03, 0.08, 0.2, 0.4, 0.9)  # one class per bucket
SERVICES = ("checkout", "search")
VERSIONS = ("v1-stable", "v2-canary")

Key = tuple[str, str]


@dataclass
class Truth:
    """Per ``(service, version)`` and slice end: requests, errors, cumulative bucket counts."""

    requests: dict[Key, dict[float, float]] = field(default_factory=dict)
    errors: dict[Key, dict[float, float]] = field(default_factory=dict)
    buckets: dict[Key, dict[float, tuple[tuple[float, float], ...]]] = field(default_factory=dict)


def _rate(service: str, version: str, t: float) -> tuple[int, int]:
    """Requests per scrape interval of 15 s (a range to draw from)."""
    if version == "v1-stable":
        return (280, 320)
    if service == "checkout":
        return (90, 110) if t > STEP_START else (12, 18)
    return (25, 40)


def generate(
    seed: int = 7, *, interval: float = 15.0
) -> tuple[list[tuple[str, dict[str, str], float, float]], Truth]:
    """Samples for ``promtool``/``SeriesStore`` and the truth of every slice."""
    rng = random.Random(seed)
    samples: list[tuple[str, dict[str, str], float, float]] = []
    truth = Truth()
    steps = round(SPAN / interval)
    for service in SERVICES:
        for version in VERSIONS:
            key = (service, version)
            ok = err = 0.0
            classes = [0.0] * len(LATENCIES)
            start = END - SPAN
            for i in range(steps + 1):
                t = start + i * interval
                if i:
                    low, high = _rate(service, version, t)
                    n = round(rng.randint(low, high) * interval / 15.0)
                    bad = rng.randint(0, n // 20)
                    drawn = rng.choices(range(len(LATENCIES)), weights=(50, 30, 12, 6, 2), k=n)
                    ok, err = ok + n - bad, err + bad
                    end = math.ceil(t / SLICE) * SLICE
                    truth.requests.setdefault(key, {}).setdefault(end, 0.0)
                    truth.requests[key][end] += n
                    truth.errors.setdefault(key, {}).setdefault(end, 0.0)
                    truth.errors[key][end] += bad
                    per_slice = [0.0] * len(LATENCIES)
                    for c in drawn:
                        classes[c] += 1
                        per_slice[c] += 1
                    old = dict(truth.buckets.setdefault(key, {}).get(end, ()))
                    truth.buckets[key][end] = tuple(
                        (b, old.get(b, 0.0) + sum(per_slice[: j + 1])) for j, b in enumerate(BOUNDS)
                    )
                samples.extend(_scrape(service, version, t, ok, err, classes))
    return samples, truth


def _scrape(
    service: str, version: str, t: float, ok: float, err: float, classes: list[float]
) -> Iterator[tuple[str, dict[str, str], float, float]]:
    base = {"job": service, "version": version}
    yield "http_requests_total", {**base, "code": "200"}, t, ok
    yield "http_requests_total", {**base, "code": "503"}, t, err
    for j, bound in enumerate(BOUNDS):
        le = "+Inf" if math.isinf(bound) else repr(bound)
        yield "http_request_duration_seconds_bucket", {**base, "le": le}, t, sum(classes[: j + 1])


def same_buckets(
    got: tuple[tuple[float, float], ...] | None, want: tuple[tuple[float, float], ...], rel: float = 1e-9
) -> bool:
    """Whether a slice's histogram has the truth's bounds and counts."""
    return (
        got is not None
        and [b for b, _ in got] == [b for b, _ in want]
        and all(
            math.isclose(g, w, rel_tol=rel, abs_tol=1e-9) for (_, g), (_, w) in zip(got, want, strict=True)
        )
    )
