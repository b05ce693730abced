"""The seam between the controller and whatever splits the traffic."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Router(Protocol):
    """Moves traffic between the stable and the canary version.

    Weights are percentages of traffic sent to the canary, 0 to 100.
    ``set_weight`` returns only once the router confirms the new split;
    it raises ``RouterUnavailable`` (retry) or ``RouterError`` (give up).
    """

    async def set_weight(self, weight: float) -> None: ...

    async def get_weight(self) -> float: ...

    async def reset(self) -> None:
        """Send all traffic to stable (weight 0)."""
        ...
