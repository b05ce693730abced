"""The vocabulary of a rollout: its phases, the commands it obeys, the events it leaves.

Every analysis, breaker verdict, decision and router action becomes a
``RolloutEvent``: a timestamped, JSON-serialisable record. The controller hands
each one to its ``on_event`` callback (progress view, simulator, demo timeline)
and appends it to the audit log, so what the screen showed and what the log
says are the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from canarypilot._exceptions import ConfigError
from canarypilot.model import Target
from canarypilot.policy import Settings


class Phase(StrEnum):
    """Where a rollout is. The last four are final."""

    PROGRESSING = "progressing"
    PAUSED = "paused"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    ABORTED = "aborted"
    FAILED = "failed"

    @property
    def final(self) -> bool:
        return self in _FINAL


_FINAL = {Phase.PROMOTED, Phase.ROLLED_BACK, Phase.ABORTED, Phase.FAILED}


class Command(StrEnum):
    """What an operator may ask of a running rollout (``canarypilot rollout <command>``)."""

    PAUSE = "pause"
    RESUME = "resume"
    ABORT = "abort"
    PROMOTE = "promote"


class EventKind(StrEnum):
    """What happened. ``data`` of each kind is documented in docs/rollout.md."""

    STARTED = "started"  # a new rollout: spec summary
    RESUMED = "resumed"  # a restart picked up persisted state
    RECONCILED = "reconciled"  # the router's actual weight compared with the stored one
    WAITING = "waiting"  # until when, and why (pause, window guard, hold, paused)
    ANALYSIS = "analysis"  # the judge's decision on one snapshot (or the metrics error)
    VERDICT = "verdict"  # the breaker's action, with reasons
    DECISION = "decision"  # the weight chosen for the next step (growth cap applied)
    ROUTER = "router"  # a router change requested and confirmed
    ROUTER_FAILED = "router_failed"  # a router call failed (will retry, or gave up)
    COMMAND = "command"  # an operator command taken
    PHASE = "phase"  # the phase changed
    NOTIFICATION_FAILED = "notification_failed"  # a webhook failed (never blocks anything)


@dataclass(frozen=True, slots=True)
class RolloutSpec:
    """One rollout: its name, the versions compared, and every setting."""

    name: str
    target: Target
    settings: Settings = field(default_factory=Settings)

    def __post_init__(self) -> None:
        from canarypilot.model import validate_name

        validate_name(self.name, what="rollout name")
        # The name is also the default state directory's last part: no "/", no "..".
        if "/" in self.name or ".." in self.name or ":" in self.name:
            raise ConfigError(
                f"invalid rollout name {self.name!r}: a rollout name is one identifier "
                "(letters, digits, _ . -), without '/', ':' or '..'"
            )


@dataclass(frozen=True, slots=True)
class RolloutEvent:
    """One line of the audit log."""

    seq: int
    at: float
    rollout: str
    kind: EventKind
    phase: Phase
    step: int
    weight: float
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": round(self.at, 6),
            "rollout": self.rollout,
            "kind": self.kind.value,
            "phase": self.phase.value,
            "step": self.step,
            "weight": self.weight,
            "data": self.data,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RolloutEvent:
        return cls(
            seq=int(raw["seq"]),
            at=float(raw["at"]),
            rollout=str(raw["rollout"]),
            kind=EventKind(raw["kind"]),
            phase=Phase(raw["phase"]),
            step=int(raw["step"]),
            weight=float(raw["weight"]),
            data=dict(raw.get("data") or {}),
        )


@dataclass(frozen=True, slots=True)
class RolloutOutcome:
    """How a rollout ended (or where it stands, for ``status``)."""

    name: str
    phase: Phase
    weight: float
    step: int
    steps: int
    reasons: tuple[str, ...] = ()
    started_at: float | None = None
    finished_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "phase": self.phase.value,
            "weight": self.weight,
            "step": self.step,
            "steps": self.steps,
            "reasons": list(self.reasons),
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }
