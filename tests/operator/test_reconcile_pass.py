"""One pass over the releases (``Operator.reconcile_all``), on a fake API: the order of what
it does with each item. The cluster tests (tests/cluster/test_operator*.py) prove the rest."""

from __future__ import annotations

import asyncio
from typing import Any

from canarypilot.operator import Operator


class FakeClient:
    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items

    async def get(self, path: str) -> dict[str, Any]:
        return {"items": self.items}


class FakeElector:
    identity = "test"

    def ensure(self) -> None:
        pass


def item(name: str) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "prod", "name": name},
        "status": {"checkpoint": {"phase": "progressing"}},
    }


def test_a_release_whose_run_ended_during_the_pass_is_left_to_the_next_listing() -> None:
    """A pass over many releases takes a while: its listing predates the status a release's
    run wrote as it ended. Reconciling from it resumed the release from a stale checkpoint,
    re-applied its end, and stopped the operator on the resulting conflict (found by
    benchmarks/bench_operator.py at 100 releases)."""
    operator = Operator(FakeClient([item("ended"), item("other")]), FakeElector(), namespace="prod")  # type: ignore[arg-type]
    reconciled: list[str] = []

    async def reconcile(obj: dict[str, Any]) -> None:
        reconciled.append(obj["metadata"]["name"])

    operator.reconcile = reconcile  # type: ignore[method-assign]

    async def main() -> None:
        async def done() -> None:
            return None

        task = asyncio.create_task(done())
        await task
        operator._tasks[("prod", "ended")] = task
        await operator.reconcile_all()
        assert ("prod", "ended") not in operator._tasks
        await operator.reconcile_all()  # the next pass, listed afresh: reconciled now

    asyncio.run(main())
    assert reconciled == ["other", "ended", "other"]
