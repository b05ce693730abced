"""Snapshots from the Prometheus HTTP API (and Thanos, Mimir, VictoriaMetrics).

Four instant queries run concurrently at one evaluation time: the latency per
version, the request count per version, the error count per version, and the
newest sample's timestamp (for staleness). With the default latency template
the latency query asks for the histogram's buckets (``sum by (le, job,
version)``) and the quantile is computed here with Prometheus' own algorithm,
so the evidence can also count slow canary requests; a custom template is
sent as written and returns the quantile. Several targets share the same four
queries: services and versions are matched with an escaped alternation and the
results are split by the job and version labels.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from canarypilot._exceptions import CanaryPilotError, ConfigError, MetricsUnavailable, QueryError
from canarypilot.metrics import promql
from canarypilot.metrics.history import Slicing, StepQuery
from canarypilot.metrics.prometheus_history import fetch_histories
from canarypilot.metrics.selectors import render, selector
from canarypilot.model import Snapshot, StepHistory, Target, VersionStats
from canarypilot.policy import PrometheusSettings, QueryPolicy
from canarypilot.retry import Backoff, retrying

Series = dict[tuple[str, str], float]

_STALENESS_TEMPLATE = "max by ($by) (timestamp($requests_metric{$selector}))"
#: With the default latency template, the buckets are fetched instead of the quantile:
#: the quantile is computed here (``promql.histogram_quantile``, Prometheus' own
#: algorithm), and the histogram feeds the exceedance evidence (``analysis.evidence``).
_BUCKETS_TEMPLATE = "sum by (le, $by) (rate($latency_metric{$selector}[$window]))"
_DEFAULT_LATENCY = QueryPolicy.model_fields["latency_template"].default
Histograms = dict[tuple[str, str], tuple[tuple[float, float], ...]]

#: Largest answer read from the backend; a bigger one is a misconfigured query, not data.
MAX_RESPONSE_BYTES = 8 * 1024 * 1024

log = logging.getLogger(__name__)


class PrometheusMetrics:
    """A ``MetricsProvider`` over the Prometheus HTTP API.

    >>> provider = PrometheusMetrics(PrometheusSettings(url="http://localhost:9090"))
    >>> # snapshot = await provider.snapshot(Target("payment-api"))
    """

    def __init__(
        self,
        settings: PrometheusSettings,
        query: QueryPolicy | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        now: Callable[[], float] = time.time,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        if not settings.url:
            raise ConfigError("no Prometheus URL: pass --prometheus URL or set prometheus.url")
        self.settings = settings
        self.query = query or QueryPolicy()
        self._now = now
        self._sleep = sleep
        self.queries_sent = 0
        #: Scrape intervals measured from the data: ``(seconds or None, measured at)`` per service.
        self.measured_intervals: dict[str, tuple[float | None, float]] = {}
        headers = self._headers(settings)
        userinfo = settings.url.partition("://")[2].partition("/")[0].rpartition("@")[0]
        self._secrets = [
            v
            for v in (
                headers.get("Authorization", "").split(" ", 1)[-1],
                settings.basic_auth_password,
                userinfo.partition(":")[2],
            )
            if v and len(v) >= 4
        ]
        self.display_url = _without_userinfo(settings.url)
        try:
            self._client = httpx.AsyncClient(
                base_url=settings.url,
                timeout=httpx.Timeout(settings.timeout_seconds),
                headers=headers,
                auth=self._auth(settings),
                verify=self._verify(settings),
                transport=transport,
            )
        except (httpx.InvalidURL, ValueError) as exc:
            raise ConfigError(f"invalid Prometheus URL {self.display_url!r}: {exc}") from None

    @staticmethod
    def _headers(settings: PrometheusSettings) -> dict[str, str]:
        headers = {"Accept": "application/json", **settings.headers}
        token = settings.bearer_token
        if settings.bearer_token_file:
            try:
                token = Path(settings.bearer_token_file).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(
                    f"cannot read bearer token file {settings.bearer_token_file}: {exc.strerror}"
                ) from exc
        if token:
            headers["Authorization"] = f"Bearer {token}"
        for name, value in headers.items():
            # httpx would quote an illegal value in its error: check first, never echo it.
            if not name.isascii() or not value.isprintable() or not value.isascii():
                raise ConfigError(f"header {name!r} has characters HTTP does not allow in a value")
        return headers

    @staticmethod
    def _auth(settings: PrometheusSettings) -> httpx.BasicAuth | None:
        if settings.basic_auth_user is None:
            return None
        return httpx.BasicAuth(settings.basic_auth_user, settings.basic_auth_password or "")

    @staticmethod
    def _verify(settings: PrometheusSettings) -> Any:
        if not settings.tls_verify:
            return False
        if (settings.url or "").startswith("http://") and not settings.ca_bundle:
            # Plain HTTP has no TLS to verify, and loading the CA store costs 10-300 ms
            # per client: a third of a whole `canarypilot analyze` on a loaded machine.
            return False
        if settings.ca_bundle:
            import ssl

            try:
                return ssl.create_default_context(cafile=settings.ca_bundle)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(f"cannot load CA bundle {settings.ca_bundle}: {exc}") from exc
        return True

    async def __aenter__(self) -> PrometheusMetrics:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def is_online(self) -> bool:
        try:
            response = await self._client.get("/-/ready")
            if response.status_code == 404:  # Thanos/Mimir/VM may not serve /-/ready
                response = await self._client.get("/api/v1/query", params={"query": "1"})
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def snapshot(self, target: Target, *, window_seconds: float | None = None) -> Snapshot:
        return (await self.snapshot_many([target], window_seconds=window_seconds))[target]

    async def snapshot_many(
        self, targets: Sequence[Target], *, window_seconds: float | None = None
    ) -> Mapping[Target, Snapshot]:
        """Measure every target with four concurrent queries, whatever their number."""
        if not targets:
            return {}
        q = self.query
        if window_seconds is not None:
            if window_seconds < 1:
                raise ConfigError(f"analysis window {window_seconds:g}s is shorter than a second")
            q = q.model_copy(update={"window": f"{int(window_seconds)}s"})
        at = self._now()
        services = sorted({t.service for t in targets})
        versions = sorted({v for t in targets for v in (t.canary_version, t.stable_version)})
        sel = selector(q, services, versions)
        by = f"{q.job_label}, {q.version_label}"
        buckets = q.latency_template == _DEFAULT_LATENCY
        texts = [
            render(_BUCKETS_TEMPLATE if buckets else q.latency_template, q, sel=sel, by=by),
            render(q.requests_template, q, sel=sel, by=by),
            render(q.errors_template, q, sel=sel, by=by),
            render(_STALENESS_TEMPLATE, q, sel=sel, by=by),
        ]
        payloads = await self._all(texts, at=at)
        labels = (q.job_label, q.version_label)
        requests, errors, newest = (
            _parse_vector(p, t, *labels) for p, t in zip(payloads[1:], texts[1:], strict=True)
        )
        window = q.window_seconds
        histograms: Histograms = {}
        if buckets:
            p99, histograms = _quantiles(_parse_buckets(payloads[0], texts[0], *labels), q.quantile, window)
        else:
            p99 = _parse_vector(payloads[0], texts[0], *labels)
        out: dict[Target, Snapshot] = {}
        for target in targets:
            stable = _stats(target.service, target.stable_version, p99, requests, errors, histograms)
            canary = _stats(target.service, target.canary_version, p99, requests, errors, histograms)
            stamps = [
                newest[(target.service, v)]
                for v in (target.stable_version, target.canary_version)
                if (target.service, v) in newest
            ]
            age = max(0.0, at - min(stamps)) if stamps else None
            if not stamps:
                # Counts without any newest sample cannot be: the answers disagree. No data.
                stable, canary = VersionStats(target.stable_version), VersionStats(target.canary_version)
            out[target] = Snapshot(target, stable, canary, at=at, window_seconds=window, age_seconds=age)
        return out

    async def _all(self, texts: Sequence[str], *, at: float) -> list[Any]:
        """Run the queries concurrently and raise the most telling failure, if any.

        The siblings of a failed query are let finish rather than cancelled: each is
        bounded by the timeout and the retries, and a connection cancelled in the middle
        of a TLS handshake is left for the garbage collector to close.
        """
        results = await asyncio.gather(*(self._query(text, at=at) for text in texts), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise _first_error(BaseExceptionGroup("Prometheus queries failed", failures)) from None
        return list(results)

    async def _query(self, query: str, *, at: float | None) -> Any:
        params = {"query": query}
        if at is not None:
            params["time"] = f"{at:.3f}"
        return await self._get_with_retries("/api/v1/query", params, query)

    async def samples(self, query: str, *, at: float) -> Any:
        """Run one instant query for a range vector (raw samples); the payload, checked to be a matrix."""
        return _matrix_payload(await self._query(query, at=at), query)

    async def range_query(self, query: str, *, start: float, end: float, step: float) -> Any:
        """Run one range query (``/api/v1/query_range``); the raw payload, checked to be a matrix."""
        params = {"query": query, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
        return _matrix_payload(await self._get_with_retries("/api/v1/query_range", params, query), query)

    async def history(
        self,
        target: Target,
        *,
        weight: float | None,
        slicing: Slicing,
        since: float | None = None,
        at: float | None = None,
    ) -> StepHistory:
        """What both versions did since ``since`` (found from the data when ``None``), by slice."""
        step = StepQuery(target, weight, since)
        return (await self.history_many([step], slicing=slicing, at=at))[target]

    async def history_many(
        self, steps: Sequence[StepQuery], *, slicing: Slicing, at: float | None = None
    ) -> Mapping[Target, StepHistory]:
        """Every step's history with one range query per signal, whatever their number."""
        return await fetch_histories(self, steps, slicing=slicing, at=self._now() if at is None else at)

    async def instant(self, query: str, *, at: float | None = None) -> Series:
        """Run one instant query; the result keyed by (job, version) label values."""
        payload = await self._query(query, at=at)
        return _parse_vector(payload, query, self.query.job_label, self.query.version_label)

    async def _get_with_retries(self, path: str, params: dict[str, str], query: str) -> Any:
        """One query, retried by :func:`retrying` on temporary failures, all of it within
        ``deadline_seconds`` (each attempt's timeout shrinks to what is left)."""
        settings = self.settings
        clock = _Waits(self._sleep)
        deadline = clock.now() + settings.deadline_seconds
        attempts = 0

        async def attempt() -> tuple[int, httpx.Headers, bytes]:
            nonlocal attempts
            attempts += 1
            self.queries_sent += 1
            budget = min(settings.timeout_seconds, deadline - clock.now())
            try:
                async with asyncio.timeout(max(budget, 0.001)):
                    status, headers, body = await self._get(path, params)
            except (TimeoutError, httpx.TimeoutException):
                raise MetricsUnavailable(f"no answer from {self.display_url} within {budget:.3g}s") from None
            except httpx.TransportError as exc:
                why = self._redact(f"cannot reach {self.display_url}: {type(exc).__name__}: {exc}")
                raise MetricsUnavailable(why) from None
            if status >= 500 or status == 429:
                raise MetricsUnavailable(
                    f"HTTP {status} from {self.display_url}", delay=_retry_after(headers.get("retry-after"))
                )
            return status, headers, body

        def failed(exc: CanaryPilotError, attempt: int, gave_up: bool) -> None:
            if not gave_up:
                log.debug("Prometheus query failed (%s); retry %d", exc, attempt)

        try:
            status, headers, body = await retrying(
                attempt,
                clock=clock,
                retries=settings.retries,
                backoff=Backoff(settings.backoff_seconds, jitter=0.5),
                deadline=deadline,
                on_failure=failed,
            )
        except MetricsUnavailable as exc:
            raise MetricsUnavailable(
                f"Prometheus failed after {attempts} attempt(s): {exc}", delay=exc.delay
            ) from None
        # A garbled answer is not retried: the same query gets the same garbage.
        return _decode(status, headers, body, query, self.display_url)

    async def _get(self, path: str, params: dict[str, str]) -> tuple[int, httpx.Headers, bytes]:
        """GET with the body size-limited: a huge answer is refused, not buffered."""
        async with self._client.stream("GET", path, params=params) as response:
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > MAX_RESPONSE_BYTES:
                    raise MetricsUnavailable(
                        f"Prometheus answer exceeds {MAX_RESPONSE_BYTES // (1024 * 1024)} MiB: "
                        "narrow the query templates or extra_selector"
                    )
                chunks.append(chunk)
            return response.status_code, response.headers, b"".join(chunks)

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


class _Waits:
    """The provider's waiting as a ``Clock``: monotonic time for the deadline (the
    evaluation time ``now`` may be pinned), the injected ``sleep`` for the waits."""

    def __init__(self, sleep: Callable[[float], Any]) -> None:
        self._sleep = sleep

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await self._sleep(seconds)


def _retry_after(value: str | None) -> float | None:
    """Seconds from an HTTP ``Retry-After`` header (a number; a date is not worth parsing
    for a query that must answer within seconds), capped at a minute."""
    try:
        seconds = float(value) if value is not None else math.nan
    except ValueError:
        return None
    return min(seconds, 60.0) if math.isfinite(seconds) and seconds >= 0 else None


def _without_userinfo(url: str) -> str:
    """``url`` without ``user:password@``: URLs end up in error messages."""
    scheme, sep, rest = url.partition("://")
    host, slash, tail = rest.partition("/")
    if "@" in host:
        host = "***@" + host.rsplit("@", 1)[1]
    return f"{scheme}{sep}{host}{slash}{tail}"


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The most telling error of a failed group: ours first, then anything but a cancellation."""
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        else:
            leaves.append(exc)

    walk(group)
    for kind in (CanaryPilotError, Exception, BaseException):
        for exc in leaves:
            if isinstance(exc, kind) and not isinstance(exc, asyncio.CancelledError):
                return exc
    return leaves[0]


def _decode(status: int, headers: httpx.Headers, body: bytes, query: str, url: str) -> Any:
    if status in (401, 403) and not headers.get("content-type", "").startswith("application/json"):
        # Prometheus' own --web.config.file basic auth, or a proxy in front: plain text.
        text = body[:200].decode(errors="replace").strip() or f"HTTP {status}"
        raise QueryError(f"Prometheus refused the credentials (HTTP {status}: {text})")
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than json can follow
        kind = headers.get("content-type", "no content type")
        raise MetricsUnavailable(
            f"{url} answered HTTP {status} with {kind} that is not Prometheus JSON "
            "(truncated, or not a Prometheus API URL?)"
        ) from None
    if not isinstance(payload, dict):
        raise MetricsUnavailable(f"{url} answered JSON that is not an object")
    if status >= 400 or payload.get("status") == "error":
        message = str(payload.get("error") or f"HTTP {status}")[:500]
        kind = payload.get("errorType", "error")
        if status in (401, 403):
            raise QueryError(f"Prometheus refused the credentials (HTTP {status}, {kind}: {message})")
        raise QueryError(f"Prometheus rejected the query ({kind}: {message})", query=query)
    return payload


def _samples(payload: Any, query: str) -> list[tuple[dict[str, str], float]]:
    data = payload.get("data")
    if not isinstance(data, dict):
        raise MetricsUnavailable("Prometheus answer has no data object")
    if data.get("resultType") != "vector":
        raise QueryError(f"expected an instant vector, got {data.get('resultType')!r}", query=query)
    result = data.get("result") or []
    if not isinstance(result, list):
        raise MetricsUnavailable(f"Prometheus answer's result is not a list: {result!r:.200}")
    out: list[tuple[dict[str, str], float]] = []
    for item in result:
        try:
            labels = item["metric"]
            raw = item["value"][1]
            value = float(raw)  # "NaN", "+Inf" and "-Inf" parse as such
            if not isinstance(labels, dict):
                raise TypeError
        except (KeyError, IndexError, TypeError, ValueError):
            raise MetricsUnavailable(f"malformed sample in Prometheus answer: {item!r:.200}") from None
        out.append(({str(k): str(v) for k, v in labels.items()}, value))
    return out


def _matrix_payload(payload: Any, query: str) -> Any:
    """``payload`` when it holds a range vector (a matrix)."""
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, dict):
        raise MetricsUnavailable("Prometheus answer has no data object")
    if data.get("resultType") != "matrix":
        raise QueryError(f"expected a range vector, got {data.get('resultType')!r}", query=query)
    return payload


def _parse_vector(payload: Any, query: str, job_label: str, version_label: str) -> Series:
    return {
        (labels.get(job_label, ""), labels.get(version_label, "")): value
        for labels, value in _samples(payload, query)
    }


def _parse_buckets(
    payload: Any, query: str, job_label: str, version_label: str
) -> dict[tuple[str, str], list[tuple[float, float]]]:
    """Bucket rates per (job, version); samples whose ``le`` is not a number are dropped,
    as ``histogram_quantile`` drops them."""
    out: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for labels, value in _samples(payload, query):
        bound = promql.parse_float(labels.get("le", ""))
        if bound is not None:
            key = (labels.get(job_label, ""), labels.get(version_label, ""))
            out.setdefault(key, []).append((bound, value))
    return out


def _quantiles(
    buckets: Mapping[tuple[str, str], list[tuple[float, float]]], quantile: float, window: float
) -> tuple[Series, Histograms]:
    """The quantile (Prometheus' algorithm, computed here) and the histogram over the window."""
    p99: Series = {}
    histograms: Histograms = {}
    for key, pairs in buckets.items():
        p99[key] = promql.histogram_quantile(quantile, pairs)
        histogram = promql.cumulative_counts(pairs, seconds=window)
        if histogram is not None:
            histograms[key] = histogram
    return p99, histograms


def _stats(
    service: str, version: str, p99: Series, requests: Series, errors: Series, histograms: Histograms
) -> VersionStats:
    key = (service, version)
    count = requests.get(key)
    failed = errors.get(key, 0.0)  # no 5xx series while requests exist: no errors
    if (
        count is not None
        and math.isfinite(count)
        and math.isfinite(failed)
        and not 0 <= failed <= count * (1 + 1e-9) + 1e-9
    ):
        # Negative counts, or more errors than requests, cannot be measured: no data.
        return VersionStats(version)
    error_rate: float | None = None
    if count is not None and math.isfinite(count):
        error_rate = failed / count if count > 0 else math.nan
    return VersionStats(
        version,
        p99_seconds=p99.get(key),
        error_rate=error_rate,
        requests=count,
        latency_buckets=histograms.get(key),
    )
