"""The analyzer's cache, single flight and batching, with a provider that counts its calls."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import replace

import pytest

from canarypilot._exceptions import MetricsUnavailable
from canarypilot.api import verdict
from canarypilot.clock import FakeClock
from canarypilot.metrics.history import Slicing, StepQuery
from canarypilot.metrics.static import StaticMetrics
from canarypilot.model import Snapshot, Status, StepHistory, Target, VersionStats
from canarypilot.policy import Settings
from canarypilot.service.coalescing import Analyzer

SETTINGS = Settings()


STATIC = StaticMetrics(
    VersionStats("v1-stable", 0.2, 0.001, 100_000), VersionStats("v2-canary", 0.2, 0.001, 10_000)
)


async def _healthy(step: StepQuery, slicing: Slicing) -> StepHistory:
    history = await STATIC.history(
        Target("any"), weight=step.weight, slicing=slicing, since=step.since, at=1_000_000.0
    )
    canary = replace(history.snapshot.canary, version=step.target.canary_version)
    return replace(
        history, target=step.target, snapshot=replace(history.snapshot, target=step.target, canary=canary)
    )


class CountingProvider:
    """Healthy numbers for every target; counts batches and can fail or be slow."""

    def __init__(self, *, delay: float = 0.01) -> None:
        self.batches: list[list[Target]] = []
        self.delay = delay
        self.failing = False

    async def history_many(
        self, steps: Sequence[StepQuery], *, slicing: Slicing, at: float | None = None
    ) -> Mapping[Target, StepHistory]:
        self.batches.append([s.target for s in steps])
        await asyncio.sleep(self.delay)
        if self.failing:
            raise MetricsUnavailable("Prometheus failed after 4 attempt(s): HTTP 503")
        return {s.target: await _healthy(s, slicing) for s in steps}

    async def history(self, target: Target, **kwargs: object) -> StepHistory:
        raise AssertionError("a batching provider is asked for batches")

    async def snapshot(self, target: Target, *, window_seconds: float | None = None) -> Snapshot:
        raise AssertionError("the analyzer judges histories, not snapshots")

    async def snapshot_many(
        self, targets: Sequence[Target], *, window_seconds: float | None = None
    ) -> Mapping[Target, Snapshot]:
        raise AssertionError("the analyzer judges histories, not snapshots")

    async def is_online(self) -> bool:
        return not self.failing


class SingleProvider:
    """A provider without ``history_many``: the analyzer must ask per target."""

    def __init__(self) -> None:
        self.calls = 0

    async def history(
        self, target: Target, *, weight: float | None, slicing: Slicing, since: float | None = None,
        at: float | None = None,
    ) -> StepHistory:  # fmt: skip
        self.calls += 1
        return await _healthy(StepQuery(target, weight, since), slicing)

    async def snapshot(self, target: Target, *, window_seconds: float | None = None) -> Snapshot:
        raise AssertionError("the analyzer judges histories, not snapshots")

    async def is_online(self) -> bool:
        return True


def analyzer(provider: object, clock: FakeClock | None = None, ttl: float = 5.0) -> Analyzer:
    return Analyzer(
        provider,  # type: ignore[arg-type]
        judge=lambda history: verdict(history, SETTINGS),
        ttl_seconds=ttl,
        batch_window_seconds=0.005,
        clock=clock or FakeClock(),
    )


async def test_identical_concurrent_requests_share_one_measurement() -> None:
    provider = CountingProvider()
    a = analyzer(provider)
    decisions = await asyncio.gather(*(a.decision(Target("api")) for _ in range(200)))
    assert {d.status for d in decisions} == {Status.PROCEED}
    assert provider.batches == [[Target("api")]]
    assert a.counters.shared == 199


async def test_different_services_in_one_window_are_measured_in_one_batch() -> None:
    provider = CountingProvider()
    a = analyzer(provider)
    targets = [Target(f"svc-{i}") for i in range(500)]
    decisions = await asyncio.gather(*(a.decision(t) for t in targets))
    assert [d.target for d in decisions] == targets
    assert len(provider.batches) == 1 and len(provider.batches[0]) == 500


async def test_a_decision_is_reused_within_the_ttl_and_refreshed_after() -> None:
    provider = CountingProvider()
    clock = FakeClock()
    a = analyzer(provider, clock, ttl=5.0)
    await a.decision(Target("api"))
    clock.advance(4.9)
    await a.decision(Target("api"))
    assert len(provider.batches) == 1 and a.counters.cache_hits == 1
    clock.advance(0.2)
    await a.decision(Target("api"))
    assert len(provider.batches) == 2


async def test_versions_are_part_of_the_key() -> None:
    provider = CountingProvider()
    a = analyzer(provider)
    await a.decision(Target("api"))
    other = await a.decision(Target("api", "v3-canary", "v2-stable"))
    assert other.canary.version == "v3-canary"
    assert len(provider.batches) == 2


async def test_a_backend_failure_reaches_every_waiter_and_is_not_cached() -> None:
    provider = CountingProvider()
    provider.failing = True
    a = analyzer(provider)
    results = await asyncio.gather(*(a.decision(Target("api")) for _ in range(5)), return_exceptions=True)
    assert all(isinstance(r, MetricsUnavailable) for r in results)
    provider.failing = False
    assert (await a.decision(Target("api"))).status is Status.PROCEED
    assert len(provider.batches) == 2
    assert a.last_success is not None


async def test_a_client_that_hangs_up_does_not_cancel_the_others() -> None:
    provider = CountingProvider(delay=0.05)
    a = analyzer(provider)
    impatient = asyncio.create_task(a.decision(Target("api")))
    patient = asyncio.create_task(a.decision(Target("api")))
    await asyncio.sleep(0.01)
    impatient.cancel()
    assert (await patient).status is Status.PROCEED
    with pytest.raises(asyncio.CancelledError):
        await impatient


async def test_providers_without_batching_are_asked_per_target() -> None:
    provider = SingleProvider()
    a = analyzer(provider)
    await asyncio.gather(*(a.decision(Target(f"svc-{i}")) for i in range(3)), a.decision(Target("svc-0")))
    assert provider.calls == 3


async def test_what_arrives_during_a_measurement_gathers_into_the_next_batch() -> None:
    provider = CountingProvider(delay=0.2)
    a = analyzer(provider)
    first = asyncio.create_task(a.decision(Target("svc-first")))
    await asyncio.sleep(0.02)  # the first batch is now being measured
    later = []
    for i in range(100):
        later.append(asyncio.create_task(a.decision(Target(f"svc-{i}"))))
        if i % 10 == 0:
            await asyncio.sleep(0.006)  # arrivals spread over several batching windows
    await asyncio.gather(first, *later)
    assert [len(b) for b in provider.batches] == [1, 100]
