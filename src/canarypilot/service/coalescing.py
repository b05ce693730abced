"""Many requests, few queries: a TTL cache, single flight, and a batching window.

Argo asks every few seconds per rollout, and a busy cluster has many rollouts. The
``Analyzer`` answers them so that Prometheus sees a constant load:

* a decision is reused for ``cache_ttl_seconds`` (errors are never cached);
* concurrent requests for the same pair of versions wait on one shared future;
* requests for different services arriving within ``batch_window_seconds`` are
  measured together with one ``snapshot_many`` call, which the Prometheus provider
  answers with four queries whatever the number of services; while one batch is
  being measured, the next one gathers.

The time source is an injectable ``Clock`` so the cache can be tested without waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from canarypilot.clock import Clock, SystemClock
from canarypilot.metrics.base import BatchMetricsProvider, MetricsProvider
from canarypilot.model import Decision, Snapshot, Target

Judge = Callable[[Snapshot], Decision]


@dataclass
class Counters:
    """How the analyzer's answers were produced (for /metrics and the benchmarks)."""

    cache_hits: int = 0
    shared: int = 0
    analysed: int = 0
    batches: int = 0


class Analyzer:
    """Decisions for targets, with caching, single flight and batching.

    >>> # analyzer = Analyzer(provider, judge=lambda snap: decide(snap, settings))
    >>> # decision = await analyzer.decision(Target("payment-api"))
    """

    def __init__(
        self,
        provider: MetricsProvider,
        *,
        judge: Judge,
        ttl_seconds: float = 5.0,
        batch_window_seconds: float = 0.005,
        clock: Clock | None = None,
    ) -> None:
        self.provider = provider
        self._judge = judge
        self._ttl = ttl_seconds
        self._window = batch_window_seconds
        self._clock = clock or SystemClock()
        self._cache: dict[Target, tuple[float, Decision]] = {}
        self._inflight: dict[Target, asyncio.Future[Decision]] = {}
        self._pending: list[Target] = []
        self._flusher: asyncio.Task[None] | None = None
        self._current: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.counters = Counters()
        self.last_success: float | None = None

    async def decision(self, target: Target) -> Decision:
        """The decision for ``target``: cached, shared with an identical request, or measured."""
        cached = self._cache.get(target)
        if cached is not None and self._clock.now() - cached[0] < self._ttl:
            self.counters.cache_hits += 1
            return cached[1]
        future = self._inflight.get(target)
        if future is not None:
            self.counters.shared += 1
            return await asyncio.shield(future)
        future = asyncio.get_running_loop().create_future()
        self._inflight[target] = future
        self._pending.append(target)
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_after_window())
        # shield: a client that hangs up must not cancel the answer others wait for.
        return await asyncio.shield(future)

    async def _flush_after_window(self) -> None:
        await asyncio.sleep(self._window)
        # One batch in flight at a time: what arrives meanwhile waits and joins the next
        # batch, so a burst of N services costs a few batches, not one per window.
        if self._current is not None:
            await asyncio.wait({self._current})
        batch, self._pending, self._flusher = self._pending, [], None
        self._current = task = asyncio.create_task(self._measure(batch))
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self._current is task:
            self._current = None

    async def _measure(self, batch: Sequence[Target]) -> None:
        self.counters.batches += 1
        try:
            snapshots = await self._snapshots(batch)
        except asyncio.CancelledError:
            for target in batch:
                self._inflight.pop(target).cancel()
            raise
        except Exception as exc:
            for target in batch:
                _fail(self._inflight.pop(target), exc)
            return
        self.last_success = self._clock.now()
        for target in batch:
            future = self._inflight.pop(target)
            try:
                decision = self._judge(snapshots[target])
            except Exception as exc:  # a judge bug must fail this request, not the others
                _fail(future, exc)
                continue
            self.counters.analysed += 1
            self._cache[target] = (self._clock.now(), decision)
            future.set_result(decision)
        self._evict()

    async def _snapshots(self, batch: Sequence[Target]) -> Mapping[Target, Snapshot]:
        if isinstance(self.provider, BatchMetricsProvider):
            return await self.provider.snapshot_many(batch)
        results = await asyncio.gather(*(self.provider.snapshot(t) for t in batch))
        return dict(zip(batch, results, strict=True))

    def _evict(self) -> None:
        # Keep the cache from growing with every service ever asked about.
        now = self._clock.now()
        if len(self._cache) > 4096:
            self._cache = {t: v for t, v in self._cache.items() if now - v[0] < self._ttl}

    async def aclose(self) -> None:
        """Cancel what is still measuring (on shutdown, after draining)."""
        for task in [*self._tasks, *([self._flusher] if self._flusher else [])]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _fail(future: asyncio.Future[Decision], exc: Exception) -> None:
    if not future.done():
        future.set_exception(exc)
        # Mark it retrieved: every waiter may have hung up already.
        future.exception()
