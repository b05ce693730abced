"""``BatchedHistories``: releases' analyses asked together are fetched together (the logic,
on a fake provider; the operator's cluster tests and benchmarks/operator.py count the real
queries)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import pytest

from canarypilot._exceptions import MetricsUnavailable
from canarypilot.metrics.history import Slicing, StepQuery
from canarypilot.model import Snapshot, StepHistory, Target, VersionStats
from canarypilot.operator.batching import BatchedHistories


class Fake:
    """Answers ``history_many`` with one empty history per step, recording each call."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[list[StepQuery], Slicing, float | None]] = []
        self.fail = fail

    async def history_many(
        self, steps: Sequence[StepQuery], *, slicing: Slicing, at: float | None = None
    ) -> Mapping[Target, StepHistory]:
        self.calls.append((list(steps), slicing, at))
        await asyncio.sleep(0)
        if self.fail:
            raise MetricsUnavailable("prometheus: connection refused")
        return {s.target: _empty(s, at or 0.0) for s in steps}

    async def history(self, *args: object, **kwargs: object) -> StepHistory:
        raise AssertionError("the batcher must call history_many")

    async def snapshot_many(self, *args: object, **kwargs: object) -> Mapping[Target, Snapshot]:
        raise AssertionError("unused")

    async def snapshot(self, *args: object, **kwargs: object) -> Snapshot:
        raise AssertionError("unused")

    async def is_online(self) -> bool:
        return True


def _empty(step: StepQuery, at: float) -> StepHistory:
    none = VersionStats("v")
    snapshot = Snapshot(step.target, none, none, at=at, window_seconds=0.0)
    return StepHistory(step.target, step.weight or 0.0, step.since or 0.0, at, (), snapshot)


SLICING = Slicing(slice_seconds=30, scrape_interval=15, lag_seconds=15)


def test_a_hundred_releases_asking_together_cost_one_fetch() -> None:
    fake = Fake()
    batched = BatchedHistories(fake, window_seconds=0.01)  # type: ignore[arg-type]

    async def main() -> list[StepHistory]:
        return await asyncio.gather(
            *(
                batched.history(
                    Target(f"svc{i}"), weight=5.0, slicing=SLICING, since=100.0 + i, at=1000.0 + i / 1000
                )
                for i in range(100)
            )
        )

    answers = asyncio.run(main())
    assert len(fake.calls) == 1
    steps, slicing, at = fake.calls[0]
    assert len(steps) == 100 and slicing == SLICING and at == pytest.approx(1000.099)
    assert [a.target.service for a in answers] == [f"svc{i}" for i in range(100)]  # each its own
    assert [a.since for a in answers] == [100.0 + i for i in range(100)]


def test_the_same_pair_from_two_starts_and_two_slicings_are_separate_fetches() -> None:
    fake = Fake()
    batched = BatchedHistories(fake, window_seconds=0.01)  # type: ignore[arg-type]
    other = Slicing(slice_seconds=60, scrape_interval=30, lag_seconds=15)

    async def main() -> list[StepHistory]:
        return await asyncio.gather(
            batched.history(Target("web"), weight=5.0, slicing=SLICING, since=100.0),
            batched.history(Target("web"), weight=10.0, slicing=SLICING, since=200.0),
            batched.history(Target("api"), weight=5.0, slicing=other, since=100.0),
        )

    web_a, web_b, api = asyncio.run(main())
    assert (web_a.since, web_b.since, api.target.service) == (100.0, 200.0, "api")
    assert sorted(len(steps) for steps, _, _ in fake.calls) == [1, 1, 1]


def test_an_error_reaches_every_caller_of_its_batch_and_the_next_batch_is_fresh() -> None:
    fake = Fake(fail=True)
    batched = BatchedHistories(fake, window_seconds=0.01)  # type: ignore[arg-type]

    async def main() -> list[object]:
        first = await asyncio.gather(
            *(batched.history(Target(f"s{i}"), weight=5.0, slicing=SLICING) for i in range(3)),
            return_exceptions=True,
        )
        fake.fail = False
        second = await batched.history(Target("s0"), weight=5.0, slicing=SLICING)
        return [*first, second]

    *errors, ok = asyncio.run(main())
    assert all(isinstance(e, MetricsUnavailable) for e in errors)
    assert isinstance(ok, StepHistory) and len(fake.calls) == 2
