"""All waiting goes through a ``Clock`` so loops can run in virtual time.

The rollout controller, the simulator and the tests never call ``time.time`` or
``asyncio.sleep`` directly: they take a clock. ``SystemClock`` is the real one,
``FakeClock`` advances only when something sleeps on it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """Wall time and waiting."""

    def now(self) -> float:
        """Seconds since the Unix epoch."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (zero or negative: return at once)."""
        ...


class SystemClock:
    """The machine's clock."""

    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        if seconds > 0:
            await asyncio.sleep(seconds)


class FakeClock:
    """A clock that jumps forward when slept on; nothing really waits.

    >>> clock = FakeClock(start=100.0)
    >>> clock.advance(5); clock.now()
    105.0
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = float(start)
        self.slept: list[float] = []

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        self._now += seconds

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        if seconds > 0:
            self._now += seconds
        # Let other tasks run, as a real sleep would.
        await asyncio.sleep(0)
