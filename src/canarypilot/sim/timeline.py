"""What happened during one simulated rollout, in the order it happened.

Every strategy (the product's controller and the two competitors) writes the
same kinds of marks here, so the engine measures all of them the same way:
when the rollback was decided, when the traffic was back on stable, when the
new version was promoted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class MarkKind(StrEnum):
    ANALYSIS = "analysis"  # one measurement and what the strategy made of it
    WEIGHT = "weight"  # the router confirmed a new canary weight
    ROLLBACK = "rollback"  # the strategy decided to roll back
    PROMOTED = "promoted"  # the new version takes all traffic
    NOTE = "note"  # anything else worth a line


class Outcome(StrEnum):
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    #: Still undecided when the scenario's duration ran out (held forever, or stuck).
    UNDECIDED = "undecided"


@dataclass(frozen=True, slots=True)
class Mark:
    """One line of the timeline; ``t`` is seconds since the rollout started."""

    t: float
    kind: MarkKind
    weight: float
    text: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"t": round(self.t, 3), "kind": self.kind.value, "weight": self.weight, "text": self.text}


class Timeline:
    """Collects marks and remembers the moments the bench measures."""

    def __init__(self, start: float) -> None:
        self.start = start
        self.marks: list[Mark] = []
        self.rollback_at: float | None = None
        self.promoted_at: float | None = None

    def add(self, now: float, kind: MarkKind, weight: float, text: str, **data: Any) -> None:
        t = now - self.start
        self.marks.append(Mark(t, kind, weight, text, data))
        if kind is MarkKind.ROLLBACK and self.rollback_at is None:
            self.rollback_at = t
        elif kind is MarkKind.PROMOTED and self.promoted_at is None:
            self.promoted_at = t

    @property
    def restored_at(self) -> float | None:
        """When the router first confirmed 0 % at or after the rollback decision."""
        if self.rollback_at is None:
            return None
        for mark in self.marks:
            if mark.kind is MarkKind.WEIGHT and mark.weight == 0 and mark.t >= self.rollback_at:
                return mark.t
        return None

    @property
    def outcome(self) -> Outcome:
        if self.rollback_at is not None:
            return Outcome.ROLLED_BACK
        if self.promoted_at is not None:
            return Outcome.PROMOTED
        return Outcome.UNDECIDED

    @property
    def finished(self) -> bool:
        """Promoted, or rolled back with the traffic back on stable."""
        return self.promoted_at is not None or self.restored_at is not None
