"""Embedded metrics: scrape the versions' /metrics pages and compute the snapshot here.

Without a Prometheus server, canarypilot reads each version's pods directly, as
Prometheus would: every ``interval_seconds`` it fetches every target, labels
the series with ``version``, ``instance`` (and ``job`` when the service is
known), keeps a bounded window of samples in a ``SeriesStore``, and evaluates
the same queries locally (``local.evaluate``). Several targets per version are
summed like ``sum by (version)``.

Failure is handled like Prometheus handles it: a target that stops answering
has its series marked stale (they disappear, they do not drop to zero), ``up``
becomes 0, and the failure is counted. Exposed sample timestamps are ignored:
every sample is stamped with the scrape's start time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from canarypilot._exceptions import ConfigError
from canarypilot.clock import Clock, SystemClock
from canarypilot.metrics.history import Slicing, StepQuery
from canarypilot.metrics.local import SeriesStore, StoreMetrics, labels_key
from canarypilot.model import Snapshot, StepHistory, Target, validate_name
from canarypilot.policy import QueryPolicy, ScrapeSettings, Settings

__all__ = ["ScrapeMetrics", "ScrapeSettings", "TargetHealth"]

log = logging.getLogger(__name__)

_ACCEPT = "text/plain;version=0.0.4;q=1,application/openmetrics-text;version=1.0.0;q=0.5,*/*;q=0.1"


@dataclass
class TargetHealth:
    """What the scraper knows about one target; ``failures`` counts failed scrapes."""

    version: str
    url: str
    instance: str
    scrapes: int = 0
    failures: int = 0
    up: bool = False
    last_error: str | None = None
    last_scrape_at: float | None = None
    last_duration_seconds: float | None = None
    series: set[tuple[str, tuple[tuple[str, str], ...]]] = field(default_factory=set, repr=False)


class ScrapeMetrics:
    """A ``MetricsProvider`` that scrapes ``targets_by_version`` itself.

    >>> # async with ScrapeMetrics({"v1-stable": ["10.0.0.5:8080"], "v2-canary": ["10.0.0.9:8080"]},
    >>> #                          service="checkout") as metrics:
    >>> #     snapshot = await metrics.snapshot(Target("checkout"))

    Use it as an async context manager: entering starts the scrape loop, leaving
    stops it. ``scrape_once()`` runs one round by hand (tests, the simulator).
    """

    def __init__(
        self,
        targets_by_version: Mapping[str, Sequence[str]],
        settings: ScrapeSettings | None = None,
        *,
        query: QueryPolicy | None = None,
        service: str | None = None,
        clock: Clock | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings or ScrapeSettings()  # type: ignore[call-arg]
        self.query = query or QueryPolicy()  # type: ignore[call-arg]
        if self.settings.retention_seconds < self.query.window_seconds:
            raise ConfigError(
                f"scrape retention {self.settings.retention_seconds:g}s is shorter than the "
                f"query window {self.query.window}"
            )
        self.service = validate_name(service, what="service name") if service is not None else None
        self.targets = _targets(targets_by_version)
        self.clock = clock or SystemClock()
        self.store = SeriesStore(
            retention_seconds=self.settings.retention_seconds, max_series=self.settings.max_series
        )
        self._metrics = StoreMetrics(
            self.store, self.query, now=self.clock.now, match_job=self.service is not None
        )
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(self.settings.timeout_seconds),
            headers={"Accept": _ACCEPT},
            transport=transport,
            follow_redirects=False,
        )
        self._task: asyncio.Task[None] | None = None
        self.rounds = 0

    @classmethod
    def from_settings(
        cls, settings: Settings, *, service: str | None = None, clock: Clock | None = None
    ) -> ScrapeMetrics:
        """The provider ``settings.scrape`` describes, with ``settings.query``'s names and window."""
        return cls(
            settings.scrape.targets, settings.scrape, query=settings.query, service=service, clock=clock
        )

    async def __aenter__(self) -> ScrapeMetrics:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def start(self) -> None:
        """Start the background scrape loop (first round at once)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="canarypilot-scrape")

    async def aclose(self) -> None:
        """Stop the loop and close the HTTP client; safe to call twice."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._client.aclose()

    @property
    def failures(self) -> int:
        """Failed scrapes since the start, over all targets."""
        return sum(t.failures for t in self.targets)

    async def _loop(self) -> None:
        # Rounds keep a fixed schedule, as Prometheus' scrape ticker does: a late
        # round does not push the later ones back, and a round longer than the
        # interval skips the ticks it missed instead of firing them back to back.
        interval = self.settings.interval_seconds
        due = self.clock.now()
        while True:
            try:
                await self.scrape_once()
            except Exception:  # a bug must not silently end scraping for the rest of the rollout
                log.exception("scrape round failed")
            now = self.clock.now()
            due += interval
            if due <= now:
                due += math.ceil((now - due) / interval + 1e-9) * interval
            await self.clock.sleep(due - now)

    async def scrape_once(self) -> None:
        """Scrape every target once, concurrently, and forget samples past the retention."""
        at = self.clock.now()
        await asyncio.gather(*(self._scrape(target, at) for target in self.targets))
        self.store.evict(at)
        self.rounds += 1

    async def _scrape(self, target: TargetHealth, at: float) -> None:
        started = time.perf_counter()
        target.scrapes += 1
        target.last_scrape_at = at
        try:
            families = await self._fetch(target)
            seen = self._ingest(target, families, at)
        except _ScrapeFailed as exc:
            if target.up or target.failures == 0:
                log.warning("scrape of %s (%s) failed: %s", target.url, target.version, exc)
            target.failures += 1
            target.up = False
            target.last_error = str(exc)
            for name, key in target.series:
                self.store.mark_stale(name, dict(key), at)
            target.series = set()
        else:
            if not target.up and target.failures:
                log.info("scrape of %s (%s) recovered", target.url, target.version)
            target.up = True
            target.last_error = None
            for name, key in target.series - seen:
                self.store.mark_stale(name, dict(key), at)
            target.series = seen
        target.last_duration_seconds = time.perf_counter() - started
        self.store.append("up", self._target_labels(target), at, 1.0 if target.up else 0.0)

    async def _fetch(self, target: TargetHealth) -> list[tuple[str, dict[str, str], float]]:
        limit = self.settings.max_body_bytes
        try:
            async with asyncio.timeout(self.settings.timeout_seconds):
                async with self._client.stream("GET", target.url) as response:
                    if response.status_code != 200:
                        raise _ScrapeFailed(f"HTTP {response.status_code}")
                    body = bytearray()
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) > limit:
                            raise _ScrapeFailed(f"answer larger than {limit} bytes")
                    kind = response.headers.get("content-type", "")
        except TimeoutError:
            raise _ScrapeFailed(f"no answer within {self.settings.timeout_seconds:g}s") from None
        except httpx.HTTPError as exc:
            raise _ScrapeFailed(f"{type(exc).__name__}: {exc}") from None
        try:
            text = body.decode("utf-8")
            parse = parse_openmetrics if kind.startswith("application/openmetrics-text") else parse_text
            return [(s.name, dict(s.labels), float(s.value)) for f in parse(text) for s in f.samples]
        except (UnicodeDecodeError, ValueError, TypeError, KeyError, IndexError) as exc:
            raise _ScrapeFailed(f"not in the Prometheus text format: {str(exc)[:200]}") from None

    def _ingest(
        self, target: TargetHealth, samples: list[tuple[str, dict[str, str], float]], at: float
    ) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
        added = self._target_labels(target)
        seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
        for name, labels, value in samples:
            for label in added.keys() & labels.keys():
                # As Prometheus without honor_labels: the target's label wins.
                labels[f"exported_{label}"] = labels.pop(label)
            labels.update(added)
            if self.store.append(name, labels, at, value):
                seen.add((name, labels_key(labels)))
        return seen

    def _target_labels(self, target: TargetHealth) -> dict[str, str]:
        labels = {self.query.version_label: target.version, "instance": target.instance}
        if self.service is not None:
            labels[self.query.job_label] = self.service
        return labels

    async def snapshot(self, target: Target, *, window_seconds: float | None = None) -> Snapshot:
        return await self._metrics.snapshot(target, window_seconds=window_seconds)

    async def snapshot_many(
        self, targets: Sequence[Target], *, window_seconds: float | None = None
    ) -> Mapping[Target, Snapshot]:
        return await self._metrics.snapshot_many(targets, window_seconds=window_seconds)

    async def history(
        self,
        target: Target,
        *,
        weight: float,
        slicing: Slicing,
        since: float | None = None,
        at: float | None = None,
    ) -> StepHistory:
        return await self._metrics.history(target, weight=weight, slicing=slicing, since=since, at=at)

    async def history_many(
        self, steps: Sequence[StepQuery], *, slicing: Slicing, at: float | None = None
    ) -> Mapping[Target, StepHistory]:
        return await self._metrics.history_many(steps, slicing=slicing, at=at)

    async def is_online(self) -> bool:
        """True when at least one target answered its latest scrape."""
        return any(t.up for t in self.targets)


class _ScrapeFailed(Exception):
    """One scrape failed; recorded on the target, never raised to callers."""


def _targets(targets_by_version: Mapping[str, Sequence[str]]) -> list[TargetHealth]:
    if not targets_by_version:
        raise ConfigError("no scrape targets: give at least one /metrics address per version")
    out: list[TargetHealth] = []
    seen: set[str] = set()
    for version, addresses in targets_by_version.items():
        validate_name(version, what="version")
        if isinstance(addresses, str) or not addresses:
            raise ConfigError(f"version {version}: give a list of one or more /metrics addresses")
        for address in addresses:
            url = address if "://" in address else f"http://{address}/metrics"
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigError(f"scrape target {address!r} is not host:port or an http(s) URL")
            if parts.username or parts.password:
                raise ConfigError(f"scrape target for {version} must not carry credentials in its URL")
            if not parts.path:
                url = f"{url}/metrics"
            if url in seen:
                raise ConfigError(f"scrape target {url} is listed twice")
            seen.add(url)
            out.append(TargetHealth(version=version, url=url, instance=parts.netloc))
    return out
