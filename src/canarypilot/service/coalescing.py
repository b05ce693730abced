"""Many requests, few queries: a TTL cache, single flight, and a batching window.

Argo asks every few seconds per rollout, and a busy cluster has many rollouts. The
``Analyzer`` answers them so that Prometheus sees a constant load:

* a decision is reused for ``cache_ttl_seconds`` (errors are never cached);
* concurrent requests for the same pair of versions wait on one shared future;
* requests for different services arriving within ``batch_window_seconds`` are
  measured together with one ``history_many`` call, which the Prometheus provider
  answers with one range query per signal whatever the number of services; while one
  batch is being measured, the next one gathers.

What is cached is a verdict on a step (the versions, the canary's weight and the
step's start when the caller knows it): the verdict depends on nothing else, so a
cache never makes two replicas disagree for longer than its TTL.

The time source is an injectable ``Clock`` so the cache can be tested without waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from canarypilot.clock import Clock, SystemClock
from canarypilot.metrics.base import BatchMetricsProvider, MetricsProvider
from canarypilot.metrics.history import Slicing, StepQuery, one_per_target
from canarypilot.model import Decision, StepHistory, Target, Verdict

Judge = Callable[[StepHistory], Verdict]


@dataclass(frozen=True, slots=True)
class Judged:
    """A verdict and the step it is on: the canary's weight and when the step began (as
    asked, or as read from the data)."""

    verdict: Verdict
    weight: float
    since: float


@dataclass
class Counters:
    """How the analyzer's answers were produced (for /metrics and the benchmarks)."""

    cache_hits: int = 0
    shared: int = 0
    analysed: int = 0
    batches: int = 0


class Analyzer:
    """Verdicts on steps, with caching, single flight and batching.

    >>> # analyzer = Analyzer(provider, judge=lambda h: decide(h, settings), slicing=slicing)
    >>> # verdict = await analyzer.verdict(StepQuery(Target("payment-api"), weight=20))
    """

    def __init__(
        self,
        provider: MetricsProvider,
        *,
        judge: Judge,
        slicing: Slicing | None = None,
        ttl_seconds: float = 5.0,
        batch_window_seconds: float = 0.005,
        clock: Clock | None = None,
    ) -> None:
        self.provider = provider
        self._judge = judge
        self._slicing = slicing or Slicing()
        self._ttl = ttl_seconds
        self._window = batch_window_seconds
        self._clock = clock or SystemClock()
        self._cache: dict[StepQuery, tuple[float, Judged]] = {}
        self._inflight: dict[StepQuery, asyncio.Future[Judged]] = {}
        self._pending: list[StepQuery] = []
        self._flusher: asyncio.Task[None] | None = None
        self._current: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.counters = Counters()
        self.last_success: float | None = None

    async def decision(
        self, target: Target, *, weight: float | None = None, since: float | None = None
    ) -> Decision:
        """The decision behind the verdict on ``target``'s current step."""
        return (await self.verdict(StepQuery(target, weight, since))).verdict.decision

    async def verdict(self, target: StepQuery) -> Judged:
        """The verdict on step ``target``: cached, shared with an identical request, or measured."""
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

    async def _measure(self, batch: Sequence[StepQuery]) -> None:
        self.counters.batches += 1
        try:
            histories = await self._histories(batch)
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
                history = histories[target]
                verdict = Judged(self._judge(history), history.weight, history.since)
            except Exception as exc:  # a judge bug must fail this request, not the others
                _fail(future, exc)
                continue
            self.counters.analysed += 1
            self._cache[target] = (self._clock.now(), verdict)
            future.set_result(verdict)
        self._evict()

    async def _histories(self, batch: Sequence[StepQuery]) -> Mapping[StepQuery, StepHistory]:
        # One batch holds each version pair once per call to history_many (its answer is
        # keyed by target): steps of the same pair asked differently go in separate calls.
        out: dict[StepQuery, StepHistory] = {}
        for group in one_per_target(batch, lambda step: step.target):
            if isinstance(self.provider, BatchMetricsProvider):
                found = await self.provider.history_many(group, slicing=self._slicing)
                out.update({s: found[s.target] for s in group})
            else:
                results = await asyncio.gather(
                    *(
                        self.provider.history(s.target, weight=s.weight, slicing=self._slicing, since=s.since)
                        for s in group
                    )
                )
                out.update(zip(group, results, strict=True))
        return out

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


def _fail(future: asyncio.Future[Judged], exc: Exception) -> None:
    if not future.done():
        future.set_exception(exc)
        # Mark it retrieved: every waiter may have hung up already.
        future.exception()
