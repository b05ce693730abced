"""Reading a service's history from Prometheus: one round trip per signal.

Two reads, for two uses. Replay reads the slices the live analysis reads — the
same range queries (``metrics.prometheus_history``: ``increase`` over each slice,
``step`` = the slice length), once over the whole range instead of once per
analysis — so that a replayed instant sees exactly the numbers a live one saw
(``fetch_slices``). Calibrate needs every scrape (its jitter is scrape to
scrape) and reads the raw samples (``fetch_recording``): an instant query of a
range selector (``http_requests_total{job="checkout",version=~"..."}[86400s]``
at the range's end) returns every sample with its scrape timestamp.

Either way a few queries serve the whole range, however many analyses are
replayed on it; ranges longer than ``MAX_CHUNK_SECONDS`` are read a day at a
time so that no answer outgrows the provider's size limit (nor a range query
Prometheus' 11,000 points).

The HTTP side (auth, TLS, tenant headers, retries, size limit, redaction) is
``PrometheusMetrics``', used as it is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from canarypilot._exceptions import ConfigError, MetricsUnavailable, QueryError
from canarypilot.metrics.history import Slicing, StepQuery
from canarypilot.metrics.prometheus import PrometheusMetrics
from canarypilot.metrics.prometheus_history import fetch_histories, measure
from canarypilot.metrics.selectors import render, selector
from canarypilot.model import Slice, StepHistory, Target, validate_name
from canarypilot.policy import QueryPolicy
from canarypilot.replay.recording import RawSeries, Recording, build_recording

#: Longest range read in one query: a day and an hour (a day at 15 s is ~100k bucket samples
#: per version, ~4 MB of JSON, under the provider's 8 MiB answer limit).
MAX_CHUNK_SECONDS = 90_000.0
#: Samples before the range's start that are read too, so its first slice has a pair of scrapes.
LEAD_SECONDS = 120.0

_SIGNALS = {
    "requests": "$requests_metric{$selector}[$window]",
    "errors": '$requests_metric{$selector,$code_label=~"$error_code_regex"}[$window]',
    "buckets": "$latency_metric{$selector}[$window]",
}


@dataclass(frozen=True, slots=True)
class Fetched:
    """A recording and what it cost to read."""

    recording: Recording
    queries: int


async def fetch_recording(
    provider: PrometheusMetrics,
    service: str,
    versions: Sequence[str],
    *,
    start: float,
    end: float,
    query: QueryPolicy | None = None,
) -> Fetched:
    """The raw samples of ``versions`` of ``service`` over ``[start, end)``, sliced."""
    validate_name(service, what="service name")
    for version in versions:
        validate_name(version, what="version")
    if not math.isfinite(start) or not math.isfinite(end) or end <= start:
        raise ConfigError("--to must be after --from")
    q = query or provider.query
    sel = selector(q, [service], versions)
    before = provider.queries_sent
    series: dict[str, list[RawSeries]] = {name: [] for name in _SIGNALS}
    chunk_end = end
    lower = start - LEAD_SECONDS
    while chunk_end > lower:
        chunk_start = max(lower, chunk_end - MAX_CHUNK_SECONDS)
        width = q.model_copy(update={"window": f"{math.ceil(chunk_end - chunk_start)}s"})
        for name, template in _SIGNALS.items():
            text = render(template, width, sel=sel, by="")
            # The provider's own HTTP path: auth, tenant headers, retries, size limit, redaction.
            payload = await provider._get_with_retries(
                "/api/v1/query", {"query": text, "time": f"{chunk_end:.3f}"}, text
            )
            series[name].extend(_matrix(payload, text))
        # Range selectors include both ends: step back a millisecond so no sample is read twice.
        chunk_end = chunk_start - 0.001
    merged = {name: _merge(rows) for name, rows in series.items()}
    if not merged["requests"]:
        raise ConfigError(
            f"no data for version {' or '.join(repr(v) for v in versions)} of {service!r} in the range "
            f"({q.requests_metric} with {q.job_label}={service!r})"
        )
    recording = build_recording(
        service,
        start=start,
        end=end,
        requests=merged["requests"],
        errors=merged["errors"],
        buckets=merged["buckets"],
        version_label=q.version_label,
    )
    return Fetched(recording, provider.queries_sent - before)


def _matrix(payload: Any, query: str) -> list[RawSeries]:
    data = payload.get("data")
    if not isinstance(data, dict):
        raise MetricsUnavailable("Prometheus answer has no data object")
    if data.get("resultType") != "matrix":
        raise QueryError(f"expected a range vector, got {data.get('resultType')!r}", query=query)
    out: list[RawSeries] = []
    for item in data.get("result") or []:
        try:
            labels = {str(k): str(v) for k, v in item["metric"].items()}
            samples = [(float(ts), float(value)) for ts, value in item["values"]]
        except (KeyError, TypeError, ValueError, AttributeError):
            raise MetricsUnavailable(f"malformed series in Prometheus answer: {item!r:.200}") from None
        out.append((labels, samples))
    return out


def _merge(rows: list[RawSeries]) -> list[RawSeries]:
    """One series per label set, chunks joined in time order."""
    joined: dict[tuple[tuple[str, str], ...], tuple[dict[str, str], list[tuple[float, float]]]] = {}
    for labels, samples in rows:
        key = tuple(sorted(labels.items()))
        _, held = joined.setdefault(key, (dict(labels), []))
        held.extend(samples)
    out: list[RawSeries] = []
    for labels, samples in joined.values():
        samples.sort()
        out.append((labels, samples))
    return out


@dataclass(frozen=True, slots=True)
class Sliced:
    """Every slice of both versions over a range, as the live analysis cuts them."""

    history: StepHistory
    slicing: Slicing
    queries: int


async def fetch_slices(
    provider: PrometheusMetrics, target: Target, *, start: float, end: float, slicing: Slicing
) -> Sliced:
    """The slices of ``[start, end]`` with the live analysis' own range queries (one per
    signal, plus its staleness query), a day at a time; the scrape interval, unless set,
    measured once from the raw samples before ``end``."""
    if not math.isfinite(start) or not math.isfinite(end) or end <= start:
        raise ConfigError("--to must be after --from")
    before = provider.queries_sent
    if slicing.measure_interval:
        # One slicing for the whole range: the scrape interval the range's end shows.
        slicing = await measure(provider, slicing, [StepQuery(target, 100.0, since=start)], end)
    slices: list[Slice] = []
    chunk_start = start
    last: StepHistory | None = None
    while chunk_start < end:
        chunk_end = min(end, chunk_start + MAX_CHUNK_SECONDS)
        step = StepQuery(target, 100.0, since=chunk_start)
        found = await fetch_histories(provider, [step], slicing=slicing, at=chunk_end + slicing.lag_seconds)
        last = found[target]
        seen = slices[-1].end if slices else -math.inf
        slices.extend(s for s in last.slices if s.end > seen + 1e-9)
        chunk_start = chunk_end
    assert last is not None
    if not any(s.canary.requests is not None or s.stable.requests is not None for s in slices):
        raise ConfigError(
            f"no data for {target.canary_version!r} or {target.stable_version!r} of {target.service!r} "
            "in the range"
        )
    history = replace(last, since=start, at=end, slices=tuple(slices))
    return Sliced(history, slicing, provider.queries_sent - before)
