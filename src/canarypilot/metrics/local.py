"""Series kept in memory, and snapshots computed from them as Prometheus would.

The scrape provider fills a ``SeriesStore`` from the versions' /metrics pages;
the simulator writes simulated counters and histograms into one directly. Either
way ``evaluate`` turns the store into the ``Snapshot`` that ``PrometheusMetrics``
would have produced from the same samples with the default query templates:

* p99:      ``histogram_quantile(q, sum by (le, job, version) (rate(<latency_metric>[w])))``
* requests: ``sum by (job, version) (increase(<requests_metric>[w]))``
* errors:   the same with ``<code_label>=~"<error_code_regex>"``
* age:      ``max by (job, version) (timestamp(<requests_metric>))``, 5m lookback.

The store is bounded: samples older than ``retention_seconds`` and series
beyond ``max_series`` are dropped (and counted), so a noisy target cannot grow
memory without limit.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from canarypilot._exceptions import ConfigError
from canarypilot.metrics import promql
from canarypilot.metrics.history import Fetched, Slicing, StepQuery, assemble, fetch_range
from canarypilot.model import Snapshot, StepHistory, Target, VersionStats
from canarypilot.policy import QueryPolicy

Labels = tuple[tuple[str, str], ...]
"""Label pairs sorted by name: a hashable series identity (with the metric name)."""

DEFAULT_RETENTION_SECONDS = 3600.0
DEFAULT_MAX_SERIES = 20_000
_MAX_CLOSED = 200_000  # remembered closed-range increases (a few MB) before starting over


def labels_key(labels: Mapping[str, str]) -> Labels:
    return tuple(sorted(labels.items()))


@dataclass
class _Series:
    labels: dict[str, str]
    samples: list[promql.Sample] = field(default_factory=list)


class SeriesStore:
    """Time-ordered samples per labelled series, bounded in age and in count.

    >>> store = SeriesStore(retention_seconds=600)
    >>> store.append("http_requests_total", {"version": "v1"}, 10.0, 5.0)
    True
    >>> [labels for labels, _ in store.series("http_requests_total")]
    [{'version': 'v1'}]
    """

    def __init__(
        self, *, retention_seconds: float = DEFAULT_RETENTION_SECONDS, max_series: int = DEFAULT_MAX_SERIES
    ) -> None:
        if retention_seconds <= 0:
            raise ConfigError("the series store's retention must be positive")
        self.retention_seconds = float(retention_seconds)
        self.max_series = max_series
        self._by_name: dict[str, dict[Labels, _Series]] = {}
        self._count = 0
        #: Samples refused because they were not newer than the series' last one.
        self.out_of_order = 0
        #: Samples refused because the store already held ``max_series`` series.
        self.series_refused = 0
        #: Increases over closed ranges, by (series' sample list, start, end): see ``closed_increase``.
        self._closed: dict[tuple[int, float, float], float | None] = {}

    def __len__(self) -> int:
        """The number of series held."""
        return self._count

    def append(self, name: str, labels: Mapping[str, str], timestamp: float, value: float) -> bool:
        """Add one sample; ``False`` (and counted) when out of order or over the series limit."""
        family = self._by_name.setdefault(name, {})
        key = labels_key(labels)
        series = family.get(key)
        if series is None:
            if self._count >= self.max_series:
                self.series_refused += 1
                return False
            series = family[key] = _Series(dict(labels))
            self._count += 1
        samples = series.samples
        if samples and timestamp <= samples[-1][0]:
            self.out_of_order += 1
            return False
        samples.append((float(timestamp), float(value)))
        horizon = timestamp - self.retention_seconds
        if samples[0][0] < horizon:
            del samples[: bisect.bisect_left(samples, horizon, key=lambda s: s[0])]
        return True

    def mark_stale(self, name: str, labels: Mapping[str, str], timestamp: float) -> bool:
        """Record that a series disappeared at ``timestamp`` (Prometheus' staleness marker)."""
        series = self._by_name.get(name, {}).get(labels_key(labels))
        if series is None or not series.samples or promql.is_stale(series.samples[-1][1]):
            return False
        return self.append(name, labels, timestamp, promql.STALE_NAN)

    def series(self, name: str) -> Iterator[tuple[Mapping[str, str], Sequence[promql.Sample]]]:
        """Every series of metric ``name``: its labels and its samples, oldest first."""
        for series in self._by_name.get(name, {}).values():
            yield series.labels, series.samples

    def closed_increase(self, samples: Sequence[promql.Sample], start: float, end: float) -> float | None:
        """``promql.increase`` over ``[start, end]`` of one of this store's series, remembered
        once the range is closed: a sample newer than ``end`` exists, so no sample can land
        inside any more (appends are in order), and one older than ``start``, so retention has
        taken nothing from inside. A step's history re-reads every old slice at every look;
        this makes a long step cost what its new slices cost, with the same numbers."""
        if not samples or samples[-1][0] <= end or samples[0][0] >= start:
            return promql.increase(samples, start=start, end=end)
        key = (id(samples), start, end)
        if key not in self._closed:
            if len(self._closed) >= _MAX_CLOSED:
                self._closed.clear()
            self._closed[key] = promql.increase(samples, start=start, end=end)
        return self._closed[key]

    def evict(self, now: float) -> int:
        """Forget samples older than the retention, and series left empty; returns samples dropped."""
        horizon = now - self.retention_seconds
        dropped = 0
        for name, family in list(self._by_name.items()):
            for key, series in list(family.items()):
                cut = bisect.bisect_left(series.samples, horizon, key=lambda s: s[0])
                if cut:
                    del series.samples[:cut]
                    dropped += cut
                if not series.samples:
                    del family[key]
                    self._count -= 1
                    self._closed.clear()  # a new series could reuse the list's id
            if not family:
                del self._by_name[name]
        return dropped


def evaluate(
    store: SeriesStore,
    targets: Sequence[Target],
    query: QueryPolicy,
    *,
    at: float,
    window_seconds: float | None = None,
    lookback_seconds: float = promql.DEFAULT_LOOKBACK_SECONDS,
    match_job: bool = True,
) -> dict[Target, Snapshot]:
    """Snapshots of ``targets`` at ``at``, from ``store``, with ``query``'s names and window.

    ``match_job=False`` ignores the job label: every series belongs to whichever
    service is asked about (the scrape provider does this when it was not told
    the service's name).
    """
    _require_default_templates(query)
    window = query.window_seconds
    if window_seconds is not None:
        if window_seconds < 1:
            raise ConfigError(f"analysis window {window_seconds:g}s is shorter than a second")
        window = float(int(window_seconds))  # as PrometheusMetrics sends it: whole seconds
    if window > store.retention_seconds:
        raise ConfigError(
            f"analysis window {window:g}s is longer than the {store.retention_seconds:g}s of samples kept"
        )
    try:
        errors_only = promql.Matcher(query.code_label, "=~", query.error_code_regex)
        errors_only.matches({})
    except (ValueError, re.error) as exc:
        raise ConfigError(f"query settings: {exc}") from None
    key_of = _keying(targets, query, match_job)

    start = at - window
    buckets: dict[tuple[str, str], dict[str, float]] = {}
    for labels, samples in store.series(query.latency_metric):
        key = key_of(labels)
        if key is None:
            continue
        value = promql.rate(samples, start=start, end=at)
        if value is not None:
            per_le = buckets.setdefault(key, {})
            le = labels.get("le", "")
            per_le[le] = per_le.get(le, 0.0) + value

    quantiles: dict[tuple[str, str], float] = {}
    histograms: dict[tuple[str, str], tuple[tuple[float, float], ...]] = {}
    for key, per_le in buckets.items():
        parsed = [(promql.parse_float(le), value) for le, value in per_le.items()]
        usable = [(bound, value) for bound, value in parsed if bound is not None]
        if usable:
            quantiles[key] = promql.histogram_quantile(query.quantile, usable)
            histogram = promql.cumulative_counts(usable, seconds=window)
            if histogram is not None:
                histograms[key] = histogram

    requests: dict[tuple[str, str], float] = {}
    errors: dict[tuple[str, str], float] = {}
    newest: dict[tuple[str, str], float] = {}
    for labels, samples in store.series(query.requests_metric):
        key = key_of(labels)
        if key is None:
            continue
        grown = promql.increase(samples, start=start, end=at)
        if grown is not None:
            requests[key] = requests.get(key, 0.0) + grown
            if errors_only.matches(labels):
                errors[key] = errors.get(key, 0.0) + grown
        last = promql.latest(samples, at=at, lookback=lookback_seconds)
        if last is not None:
            newest[key] = max(newest.get(key, -math.inf), last[0])

    out: dict[Target, Snapshot] = {}
    for target in targets:
        job = target.service if match_job else ""
        found = [(job, v) for v in (target.stable_version, target.canary_version) if (job, v) in newest]
        age = max(0.0, at - min(newest[k] for k in found)) if found else None
        out[target] = Snapshot(
            target,
            _stats((job, target.stable_version), quantiles, requests, errors, histograms),
            _stats((job, target.canary_version), quantiles, requests, errors, histograms),
            at=at,
            window_seconds=window,
            age_seconds=age,
        )
    return out


def histories(
    store: SeriesStore,
    steps: Sequence[StepQuery],
    query: QueryPolicy,
    slicing: Slicing,
    *,
    at: float,
    lookback_seconds: float = promql.DEFAULT_LOOKBACK_SECONDS,
    match_job: bool = True,
) -> dict[Target, StepHistory]:
    """Step histories from ``store``, slice by slice, as ``PrometheusMetrics.history_many``
    reads them: ``increase`` over each slice of the same absolute grid."""
    _require_default_templates(query)
    if not steps:
        return {}
    oldest, ends = fetch_range(steps, slicing, at)
    if ends and ends[-1] - oldest > store.retention_seconds:
        oldest = ends[-1] - store.retention_seconds
        ends = tuple(e for e in ends if e - slicing.length >= oldest)
    length = slicing.length
    key_of = _keying([s.target for s in steps], query, match_job)
    errors_only = promql.Matcher(query.code_label, "=~", query.error_code_regex)

    buckets: dict[tuple[str, str], dict[float, list[tuple[float, float]]]] = {}
    for labels, samples in store.series(query.latency_metric):
        key = key_of(labels)
        bound = promql.parse_float(labels.get("le", ""))
        if key is None or bound is None:
            continue
        per_le = buckets.setdefault(key, {})
        for end in ends:
            grown = store.closed_increase(samples, end - length, end)
            if grown is not None:
                per_le.setdefault(end, []).append((bound, grown))

    requests: dict[tuple[str, str], dict[float, float]] = {}
    errors: dict[tuple[str, str], dict[float, float]] = {}
    newest: dict[tuple[str, str], float] = {}
    for labels, samples in store.series(query.requests_metric):
        key = key_of(labels)
        if key is None:
            continue
        is_error = errors_only.matches(labels)
        for end in ends:
            grown = store.closed_increase(samples, end - length, end)
            if grown is not None:
                per_end = requests.setdefault(key, {})
                per_end[end] = per_end.get(end, 0.0) + grown
                if is_error:
                    failed = errors.setdefault(key, {})
                    failed[end] = failed.get(end, 0.0) + grown
        last = promql.latest(samples, at=at, lookback=lookback_seconds)
        if last is not None:
            newest[key] = max(newest.get(key, -math.inf), last[0])

    fetched = Fetched(ends, requests, errors, buckets, newest)
    job = None if match_job else ""
    return {s.target: assemble(s, fetched, slicing, at=at, quantile=query.quantile, job=job) for s in steps}


def _keying(
    targets: Sequence[Target], query: QueryPolicy, match_job: bool
) -> Callable[[Mapping[str, str]], tuple[str, str] | None]:
    """Which ``(job, version)`` a series counts for, or ``None`` when the steps do not ask for it."""
    try:
        extra = promql.parse_matchers(query.extra_selector)
    except (ValueError, re.error) as exc:
        raise ConfigError(f"query settings: {exc}") from None
    wanted = {(t.service, v) for t in targets for v in (t.canary_version, t.stable_version)}
    versions = {v for _, v in wanted}

    def key_of(labels: Mapping[str, str]) -> tuple[str, str] | None:
        version = labels.get(query.version_label, "")
        if version not in versions or not all(m.matches(labels) for m in extra):
            return None
        if not match_job:
            return ("", version)
        job = labels.get(query.job_label, "")
        return (job, version) if (job, version) in wanted else None

    return key_of


def _stats(
    key: tuple[str, str],
    quantiles: Mapping[tuple[str, str], float],
    requests: Mapping[tuple[str, str], float],
    errors: Mapping[tuple[str, str], float],
    histograms: Mapping[tuple[str, str], tuple[tuple[float, float], ...]],
) -> VersionStats:
    count = requests.get(key)
    error_rate: float | None = None
    if count is not None and math.isfinite(count):
        failed = errors.get(key, 0.0)  # requests but no 5xx series: no errors, as with Prometheus
        error_rate = failed / count if count > 0 else math.nan
    return VersionStats(
        key[1],
        p99_seconds=quantiles.get(key),
        error_rate=error_rate,
        requests=count,
        latency_buckets=histograms.get(key),
    )


def _require_default_templates(query: QueryPolicy) -> None:
    # The local evaluator implements the default queries only; a custom template
    # silently ignored would judge the canary on something else than configured.
    for name in ("latency_template", "requests_template", "errors_template"):
        if getattr(query, name) != QueryPolicy.model_fields[name].default:
            raise ConfigError(
                f"query.{name} is customised, but embedded metrics evaluate only the default "
                "queries; set prometheus.url to use a Prometheus server"
            )


class StoreMetrics:
    """A ``MetricsProvider`` over a ``SeriesStore``: for the simulator, and under ``ScrapeMetrics``.

    >>> import asyncio
    >>> provider = StoreMetrics(SeriesStore(), now=lambda: 1000.0)
    >>> asyncio.run(provider.snapshot(Target("api"))).canary.requests is None
    True
    """

    def __init__(
        self,
        store: SeriesStore,
        query: QueryPolicy | None = None,
        *,
        now: Callable[[], float],
        lookback_seconds: float = promql.DEFAULT_LOOKBACK_SECONDS,
        match_job: bool = True,
    ) -> None:
        self.store = store
        self.query = query or QueryPolicy()
        _require_default_templates(self.query)
        self._now = now
        self.lookback_seconds = lookback_seconds
        self.match_job = match_job

    async def snapshot(self, target: Target, *, window_seconds: float | None = None) -> Snapshot:
        return self.snapshot_now([target], window_seconds=window_seconds)[target]

    async def snapshot_many(
        self, targets: Sequence[Target], *, window_seconds: float | None = None
    ) -> Mapping[Target, Snapshot]:
        return self.snapshot_now(targets, window_seconds=window_seconds)

    def snapshot_now(
        self, targets: Iterable[Target], *, window_seconds: float | None = None
    ) -> dict[Target, Snapshot]:
        """The synchronous form, for callers outside an event loop (the simulator)."""
        return evaluate(
            self.store,
            list(targets),
            self.query,
            at=self._now(),
            window_seconds=window_seconds,
            lookback_seconds=self.lookback_seconds,
            match_job=self.match_job,
        )

    async def history(
        self,
        target: Target,
        *,
        weight: float | None,
        slicing: Slicing,
        since: float | None = None,
        at: float | None = None,
    ) -> StepHistory:
        return self.histories_now([StepQuery(target, weight, since)], slicing=slicing, at=at)[target]

    async def history_many(
        self, steps: Sequence[StepQuery], *, slicing: Slicing, at: float | None = None
    ) -> Mapping[Target, StepHistory]:
        return self.histories_now(steps, slicing=slicing, at=at)

    def histories_now(
        self, steps: Sequence[StepQuery], *, slicing: Slicing, at: float | None = None
    ) -> dict[Target, StepHistory]:
        """The synchronous form, for callers outside an event loop (the simulator)."""
        return histories(
            self.store,
            steps,
            self.query,
            slicing,
            at=self._now() if at is None else at,
            lookback_seconds=self.lookback_seconds,
            match_job=self.match_job,
        )

    async def is_online(self) -> bool:
        return True
