"""A router that only remembers what it was told: for tests and the simulator."""

from __future__ import annotations

from canarypilot._exceptions import RouterUnavailable


class RecordingRouter:
    """Keeps the weight and the history of changes; can be told to fail.

    >>> import asyncio
    >>> r = RecordingRouter()
    >>> asyncio.run(r.set_weight(10)); r.history
    [10.0]
    """

    def __init__(self, weight: float = 0.0) -> None:
        self.weight = float(weight)
        self.history: list[float] = []
        self.failures_left = 0

    async def set_weight(self, weight: float) -> None:
        if self.failures_left > 0:
            self.failures_left -= 1
            raise RouterUnavailable("recording router told to fail")
        if not 0 <= weight <= 100:
            raise ValueError(f"weight {weight} outside 0..100")
        self.weight = float(weight)
        self.history.append(self.weight)

    async def get_weight(self) -> float:
        return self.weight

    async def reset(self) -> None:
        await self.set_weight(0.0)
