"""One Prometheus client for every release that reads the same Prometheus, and their analyses
fetched together.

Each release's controller asks for its step's history when the next slice is published
(``RolloutController._next_look``: the absolute slice grid plus the lag), so releases with
the same slicing ask within milliseconds of each other. ``BatchedHistories`` gathers the
requests of ``window_seconds`` and answers them with one ``history_many`` call, which the
Prometheus provider answers with one range query per signal whatever the number of
releases: 100 releases cost the queries of one, per slice, instead of a hundred times that.

Steps of the same pair of versions asked from different starts go in separate calls (the
provider's answer is keyed by the pair). ``at`` is the newest of the batch's: every caller
asked for "now", a few milliseconds apart. An error fails every request of its batch, as it
would have failed each alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass

from canarypilot.metrics.base import BatchMetricsProvider
from canarypilot.metrics.history import Slicing, StepQuery, one_per_target
from canarypilot.model import Snapshot, StepHistory, Target
from canarypilot.policy import PrometheusSettings, QueryPolicy


@dataclass
class _Request:
    step: StepQuery
    slicing: Slicing
    at: float | None
    answer: asyncio.Future[StepHistory]


class BatchedHistories:
    """A ``MetricsProvider`` over a shared ``BatchMetricsProvider``, batching ``history``."""

    def __init__(self, inner: BatchMetricsProvider, *, window_seconds: float = 0.05) -> None:
        self.inner = inner
        self.window = window_seconds
        self._pending: list[_Request] = []
        self._flusher: asyncio.Task[None] | None = None

    async def snapshot(self, target: Target, *, window_seconds: float | None = None) -> Snapshot:
        return await self.inner.snapshot(target, window_seconds=window_seconds)

    async def is_online(self) -> bool:
        return await self.inner.is_online()

    async def history(
        self,
        target: Target,
        *,
        weight: float | None,
        slicing: Slicing,
        since: float | None = None,
        at: float | None = None,
    ) -> StepHistory:
        answer: asyncio.Future[StepHistory] = asyncio.get_running_loop().create_future()
        self._pending.append(_Request(StepQuery(target, weight, since), slicing, at, answer))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_after_window())
        return await asyncio.shield(answer)

    async def _flush_after_window(self) -> None:
        await asyncio.sleep(self.window)
        batch, self._pending, self._flusher = self._pending, [], None
        by_slicing: dict[Slicing, list[_Request]] = {}
        for request in batch:
            by_slicing.setdefault(request.slicing, []).append(request)
        await asyncio.gather(*(self._fetch(slicing, group) for slicing, group in by_slicing.items()))

    async def _fetch(self, slicing: Slicing, requests: Sequence[_Request]) -> None:
        for group in one_per_target(requests, lambda request: request.step.target):
            ats = [r.at for r in group if r.at is not None]
            try:
                found = await self.inner.history_many(
                    [r.step for r in group], slicing=slicing, at=max(ats) if ats else None
                )
            except Exception as exc:  # every caller gets the error it would have had alone
                for request in group:
                    if not request.answer.done():
                        request.answer.set_exception(exc)
                continue
            for request in group:
                if not request.answer.done():
                    request.answer.set_result(found[request.step.target])


class SharedPrometheus:
    """One ``BatchedHistories`` per Prometheus (URL, credentials, query settings), opened on
    first use and closed with the operator."""

    def __init__(self, stack: AsyncExitStack, *, window_seconds: float = 0.05) -> None:
        self._stack = stack
        self._window = window_seconds
        self._open: dict[str, BatchedHistories] = {}

    async def get(self, prometheus: PrometheusSettings, query: QueryPolicy) -> BatchedHistories:
        from canarypilot.metrics.prometheus import PrometheusMetrics

        # The key holds credentials: it stays in this dictionary, never in a log line.
        key = prometheus.model_dump_json() + query.model_dump_json()
        shared = self._open.get(key)
        if shared is None:
            provider = await self._stack.enter_async_context(PrometheusMetrics(prometheus, query))
            shared = self._open[key] = BatchedHistories(provider, window_seconds=self._window)
        return shared
