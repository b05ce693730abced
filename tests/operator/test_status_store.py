"""The status store, on a recording fake of the API: the command annotation removed only
after what the command did is in the status."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from canarypilot.operator import parse_release
from canarypilot.operator.status import StatusStore
from canarypilot.rollout import Command, Phase, RolloutState
from tests.operator.test_resource import RELEASE


class RecordingClient:
    def __init__(self) -> None:
        self.writes: list[dict[str, Any]] = []
        self.patches: list[list[dict[str, Any]]] = []
        self.version = 1

    async def json_patch(self, path: str, ops: list[dict[str, Any]]) -> dict[str, Any]:
        self.patches.append(ops)
        return {}

    async def replace(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        self.writes.append(body["status"])
        return {"metadata": {"resourceVersion": str(self.version)}}

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return body


def state(**changes: Any) -> RolloutState:
    base = RolloutState(
        name="web",
        phase=Phase.PROGRESSING,
        step=1,
        steps=4,
        weight=5.0,
        started_at=0.0,
        step_started_at=0.0,
        next_analysis_at=10.0,
    )
    return dataclasses.replace(base, **changes)


def new_store(client: RecordingClient) -> StatusStore:
    return StatusStore(
        client,  # type: ignore[arg-type]
        parse_release(RELEASE),
        {"metadata": {"resourceVersion": "1"}},
        fence=lambda: None,
        now=lambda: 0.0,
        fresh=True,
    )


def test_a_command_annotation_is_removed_only_after_the_status_shows_what_it_did() -> None:
    """An operator that dies between taking a command and acting on it leaves the annotation
    on the resource, so the next leader takes it again."""
    client = RecordingClient()

    async def main() -> None:
        store = new_store(client)
        store.save(state())
        await store.flush()
        store.put_command(Command.PAUSE, at=1.0, annotation="pause")
        assert store.holds("pause")  # the next pass does not hand it over twice
        await store.flush()  # the controller has not taken it: nothing is removed
        assert client.patches == []
        assert store.take_commands() == [Command.PAUSE]
        store.save(state(phase=Phase.PAUSED))
        await store.flush()
        assert client.writes[-1]["phase"] == "Paused"
        assert client.patches == [
            [
                {"op": "test", "path": "/metadata/annotations/canarypilot.io~1command", "value": "pause"},
                {"op": "remove", "path": "/metadata/annotations/canarypilot.io~1command"},
            ]
        ]
        assert not store.holds("pause")

    asyncio.run(main())
