"""Step histories from Prometheus: one range query per signal for a whole batch of steps.

``increase`` over one slice, evaluated at every slice end (``query_range`` with
``step`` = the slice length), is each slice's count: the latency buckets, the
requests and the errors, each ``sum by (job, version)`` over every service and version
of the batch (the selector is built by ``selectors``: every label value escaped).
A fourth, instant query reads the newest sample's timestamp for staleness. The
slice grid is absolute (``history.Slicing``), so steps that began at different
times share the same three range queries; each step keeps the slices after its start.

When ``query.scrape_interval_seconds`` is unset, the slices' length is not guessed: the
scrape interval is measured from the request counter's raw samples (``measure``), the
largest median gap between samples of any of its series, so a 30 s scrape gets 60 s slices
(two samples each) without being told. It is measured again every five minutes.

A custom ``query.latency_template`` returns a quantile, not buckets: its slices carry
no histogram and the step's p99 is one instant query over the step.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from canarypilot._exceptions import MetricsUnavailable, QueryError
from canarypilot.metrics import promql
from canarypilot.metrics.history import Fetched, Key, Slicing, StepQuery, assemble, fetch_range
from canarypilot.metrics.selectors import render, selector
from canarypilot.model import StepHistory, Target
from canarypilot.policy import QueryPolicy

if TYPE_CHECKING:
    from canarypilot.metrics.prometheus import PrometheusMetrics

_BUCKET_INCREASE = "sum by (le, $by) (increase($latency_metric{$selector}[$window]))"
_STALENESS = "max by ($by) (timestamp($requests_metric{$selector}))"
_DEFAULT_LATENCY = QueryPolicy.model_fields["latency_template"].default
#: How far back raw samples are read to measure the scrape interval: 20 samples at
#: 15 s scrapes, still two at 150 s.
PROBE_SECONDS = 300
#: How long a measured interval stands before it is measured again.
MEASURED_FOR_SECONDS = 300.0
#: Services whose interval is remembered; past this the memory starts afresh.
MAX_MEASURED = 10_000


async def fetch_histories(
    provider: PrometheusMetrics, steps: Sequence[StepQuery], *, slicing: Slicing, at: float
) -> dict[Target, StepHistory]:
    """Each step's history at ``at``, with at most four queries sent at once."""
    if not steps:
        return {}
    q = provider.query
    if slicing.measure_interval:
        slicing = await measure(provider, slicing, steps, at)
    targets = [s.target for s in steps]
    sel = selector(q, sorted({t.service for t in targets}), _versions(targets))
    oldest, ends = fetch_range(steps, slicing, at)
    sliced = q.model_copy(update={"window": f"{round(slicing.length * 1000)}ms"})
    by = f"{q.job_label}, {q.version_label}"
    labels = (q.job_label, q.version_label)
    has_buckets = q.latency_template == _DEFAULT_LATENCY

    async def ranged(template: str) -> Any:
        text = render(template, sliced, sel=sel, by=by)
        return text, await provider.range_query(text, start=ends[0], end=ends[-1], step=slicing.length)

    jobs: list[Any] = [provider.instant(render(_STALENESS, q, sel=sel, by=by), at=at)]
    if ends:
        jobs += [ranged(q.requests_template), ranged(q.errors_template)]
        if has_buckets:
            jobs.append(ranged(_BUCKET_INCREASE))
        else:
            span = max(1, int(at - oldest))
            whole = q.model_copy(update={"window": f"{span}s"})
            jobs.append(provider.instant(render(q.latency_template, whole, sel=sel, by=by), at=at))
    results: list[Any] = list(await asyncio.gather(*jobs, return_exceptions=True))
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        from canarypilot.metrics.prometheus import _first_error

        raise _first_error(BaseExceptionGroup("Prometheus queries failed", failures)) from None

    newest: Mapping[Key, float] = results[0]
    fetched = Fetched(ends=(), requests={}, errors={}, buckets=None, newest=newest)
    if ends:
        (req_text, req_payload), (err_text, err_payload) = results[1], results[2]
        requests = _matrix(req_text, req_payload, *labels)
        errors = _matrix(err_text, err_payload, *labels)
        buckets, p99 = None, None
        if has_buckets:
            lat_text, lat_payload = results[3]
            buckets = _bucket_matrix(lat_text, lat_payload, *labels)
        else:
            p99 = results[3]
        fetched = Fetched(ends, requests, errors, buckets, newest, p99)
    return {s.target: assemble(s, fetched, slicing, at=at, quantile=q.quantile) for s in steps}


async def measure(
    provider: PrometheusMetrics, slicing: Slicing, steps: Sequence[StepQuery], at: float
) -> Slicing:
    """``slicing`` with the scrape interval the data shows at ``at``: the slowest of the
    batch's services, each measured once per ``MEASURED_FOR_SECONDS`` (a service without
    two samples yet is asked again after a tenth of that). Unchanged while none has data."""
    q = provider.query
    known = provider.measured_intervals
    services = sorted({s.target.service for s in steps})

    def fresh(service: str) -> bool:
        if service not in known:
            return False
        interval, measured_at = known[service]
        stands = MEASURED_FOR_SECONDS if interval is not None else MEASURED_FOR_SECONDS / 10
        return 0 <= at - measured_at < stands

    missing = [service for service in services if not fresh(service)]
    if missing:
        sel = selector(q, missing, _versions([s.target for s in steps]))
        text = f"{q.requests_metric}{{{sel}}}[{PROBE_SECONDS}s]"
        try:
            series = _series(await provider.samples(text, at=at), text)
        except QueryError:
            # A store that refuses raw samples still answers the slices: keep the default.
            series = []
        if len(known) + len(missing) > MAX_MEASURED:
            # Start afresh, keeping this batch's own measurements.
            kept = {service: known[service] for service in services if service in known}
            known.clear()
            known.update(kept)
        for service in missing:
            known[service] = (
                scrape_interval([p for labels, p in series if labels.get(q.job_label) == service]),
                at,
            )
    measured = [interval for service in services if (interval := known[service][0]) is not None]
    if not measured:
        return slicing
    return replace(slicing, scrape_interval=max(measured), measure_interval=False)


def scrape_interval(series: Sequence[Sequence[tuple[float, float]]]) -> float | None:
    """The slowest series' median gap between samples, in whole milliseconds, at most an
    hour; ``None`` when no series has two samples.

    >>> scrape_interval([[(0, 1), (15, 2), (30, 3)], [(0, 1), (30, 2), (60, 4)]])
    30.0
    """
    medians = []
    for points in series:
        stamps = sorted({t for t, _ in points})
        gaps = sorted(b - a for a, b in zip(stamps, stamps[1:], strict=False))
        if gaps:
            medians.append(gaps[len(gaps) // 2])
    if not medians or max(medians) <= 0:
        return None
    return min(3600.0, round(float(max(medians)), 3))


def _versions(targets: Sequence[Target]) -> list[str]:
    return sorted({v for t in targets for v in (t.canary_version, t.stable_version)})


def _series(payload: Any, query: str) -> list[tuple[dict[str, str], list[tuple[float, float]]]]:
    """The matrix's series: labels and finite ``(timestamp, value)`` points."""
    out: list[tuple[dict[str, str], list[tuple[float, float]]]] = []
    for item in payload["data"].get("result") or []:
        try:
            labels = item["metric"]
            if not isinstance(labels, dict):
                raise TypeError
            points = [(round(float(t), 3), float(v)) for t, v in item["values"]]
        except (KeyError, IndexError, TypeError, ValueError):
            raise MetricsUnavailable(f"malformed series in Prometheus answer: {item!r:.200}") from None
        finite = [(t, v) for t, v in points if math.isfinite(v)]
        out.append(({str(k): str(v) for k, v in labels.items()}, finite))
    return out


def _matrix(query: str, payload: Any, job_label: str, version_label: str) -> dict[Key, dict[float, float]]:
    out: dict[Key, dict[float, float]] = {}
    for labels, points in _series(payload, query):
        per_end = out.setdefault((labels.get(job_label, ""), labels.get(version_label, "")), {})
        for t, v in points:
            per_end[t] = per_end.get(t, 0.0) + v
    return out


def _bucket_matrix(
    query: str, payload: Any, job_label: str, version_label: str
) -> dict[Key, dict[float, list[tuple[float, float]]]]:
    """Bucket counts per series and slice end; a non-numeric ``le`` is dropped, as
    ``histogram_quantile`` drops it."""
    out: dict[Key, dict[float, list[tuple[float, float]]]] = {}
    for labels, points in _series(payload, query):
        bound = promql.parse_float(labels.get("le", ""))
        if bound is None:
            continue
        per_end = out.setdefault((labels.get(job_label, ""), labels.get(version_label, "")), {})
        for t, v in points:
            per_end.setdefault(t, []).append((bound, v))
    return out
