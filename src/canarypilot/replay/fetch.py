"""Reading a service's history from Prometheus: one round trip per signal.

An instant query of a range selector (``http_requests_total{job="checkout",
version=~"..."}[86400s]`` at the range's end) returns every raw sample with
its scrape timestamp. That is all replay needs: it can then tell exactly which
samples had been scraped at any instant, which a ``query_range`` of
``increase()`` (evaluated after the fact, extrapolated to its window's edges)
cannot. Three signals, three queries, however long the range and however many
analyses are replayed on it; ranges longer than ``MAX_CHUNK_SECONDS`` are read
in chunks so that no answer outgrows the provider's size limit.

The HTTP side (auth, TLS, tenant headers, retries, size limit, redaction) is
``PrometheusMetrics``', used as it is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from canarypilot._exceptions import ConfigError, MetricsUnavailable, QueryError
from canarypilot.metrics.prometheus import PrometheusMetrics
from canarypilot.metrics.selectors import render, selector
from canarypilot.model import validate_name
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
