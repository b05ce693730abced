"""Durable rollout state: a SQLite checkpoint plus an append-only, fsynced audit log.

A rollout must survive ``kill -9`` at any instant and resume without losing or
repeating a step. Two files in the state directory make that work:

* ``state.db`` (SQLite, ``synchronous=FULL``): the checkpoint — phase, step,
  confirmed weight, breaker counters — and the queue of operator commands.
  A router change is written here as *pending* before it is sent; the resumed
  controller completes a pending change instead of deciding it again.
* ``audit.jsonl``: one JSON event per line, fsynced before the controller acts
  on it. A line torn by a crash is cut off when the log is reopened.

With ``directory=None`` everything stays in memory (simulator, demo, tests).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import IO, Any, Protocol

from canarypilot._exceptions import StateError
from canarypilot.model import Decision, Status
from canarypilot.rollout.events import Command, Phase, RolloutEvent

_SCHEMA = """
CREATE TABLE IF NOT EXISTS state (name TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS commands (
    id INTEGER PRIMARY KEY AUTOINCREMENT, command TEXT NOT NULL, at REAL NOT NULL,
    taken INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS config (id INTEGER PRIMARY KEY CHECK (id = 1), body TEXT NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class PendingChange:
    """A router change decided but not yet confirmed: the weight, the step and phase it
    leads to, why, and whether it starts a new step (its pause and analyses)."""

    weight: float
    step: int
    phase: Phase
    reasons: tuple[str, ...] = ()
    restart: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "weight": self.weight,
            "step": self.step,
            "phase": self.phase.value,
            "reasons": list(self.reasons),
            "restart": self.restart,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> PendingChange:
        return cls(
            weight=float(raw["weight"]),
            step=int(raw["step"]),
            phase=Phase(raw["phase"]),
            reasons=tuple(str(r) for r in raw.get("reasons") or ()),
            restart=bool(raw.get("restart", False)),
        )


@dataclass(frozen=True, slots=True)
class AnalysisSummary:
    """The last analysis, as ``rollout status`` shows it."""

    status: Status
    safe_weight: float | None = None
    latency_delta: float | None = None
    error_delta: float | None = None

    @classmethod
    def of(cls, decision: Decision) -> AnalysisSummary:
        body = decision.to_dict()  # JSON-safe numbers: NaN and infinities become None
        return cls(decision.status, body["safe_weight"], body["latency_delta"], body["error_delta"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "safe_weight": self.safe_weight,
            "latency_delta": self.latency_delta,
            "error_delta": self.error_delta,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> AnalysisSummary:
        def number(key: str) -> float | None:
            value = raw.get(key)
            return float(value) if isinstance(value, int | float) else None

        return cls(
            Status(raw["status"]), number("safe_weight"), number("latency_delta"), number("error_delta")
        )


@dataclass(frozen=True, slots=True)
class RolloutState:
    """The checkpoint. ``weight`` is what the router last confirmed; ``pending`` is a
    router change decided but not yet confirmed."""

    name: str
    phase: Phase
    step: int
    steps: int
    weight: float
    started_at: float
    step_started_at: float
    next_analysis_at: float
    last_weight_change: float | None = None
    pending: PendingChange | None = None
    consecutive: int = 0
    outage_since: float | None = None
    reasons: tuple[str, ...] = ()
    last_analysis: AnalysisSummary | None = None
    finished_at: float | None = None

    def to_json(self) -> str:
        body = {f.name: getattr(self, f.name) for f in fields(self)}
        body["phase"] = self.phase.value
        body["reasons"] = list(self.reasons)
        body["pending"] = None if self.pending is None else self.pending.to_dict()
        body["last_analysis"] = None if self.last_analysis is None else self.last_analysis.to_dict()
        return json.dumps(body, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RolloutState:
        try:
            raw = json.loads(text)
            # Keys of older versions (the breaker's memory in "extra") are left behind.
            body = {f.name: raw[f.name] for f in fields(cls) if f.name in raw}
            body["phase"] = Phase(body["phase"])
            body["reasons"] = tuple(body.get("reasons") or ())
            if body.get("pending") is not None:
                body["pending"] = PendingChange.from_dict(body["pending"])
            last = body.get("last_analysis")
            body["last_analysis"] = AnalysisSummary.from_dict(last) if isinstance(last, dict) else None
            return cls(**body)
        except (ValueError, TypeError, KeyError) as exc:
            raise StateError(f"stored rollout state is unreadable: {exc}") from exc

    def but(self, **changes: Any) -> RolloutState:
        return replace(self, **changes)


class RolloutStore(Protocol):
    """Where a controller keeps its checkpoint, its command queue and its audit log.

    ``StateStore`` (SQLite + an fsynced log) is the one ``canarypilot rollout`` uses;
    ``canarypilot operator`` keeps the checkpoint in a CanaryRelease's status instead.
    A ``save`` must be durable before the controller's next router call returns: the
    controller writes a change as pending, then calls the router.
    """

    def lock(self) -> None: ...
    def close(self) -> None: ...
    def load(self, name: str | None = None) -> RolloutState | None: ...
    def save(self, state: RolloutState) -> None: ...
    def put_command(self, command: Command, *, at: float) -> None: ...
    def take_commands(self) -> list[Command]: ...
    def next_seq(self) -> int: ...
    def append(self, event: RolloutEvent) -> None: ...
    def events(self) -> list[RolloutEvent]: ...


class StateStore:
    """The state directory of one rollout (or memory when ``directory`` is None)."""

    def __init__(self, directory: str | Path | None = None) -> None:
        self.directory = Path(directory) if directory is not None else None
        self._memory_events: list[RolloutEvent] = []
        self._audit: IO[bytes] | None = None
        self._lock: IO[bytes] | None = None
        try:
            if self.directory is None:
                self._db = sqlite3.connect(":memory:", isolation_level=None)
            else:
                # The stored rollout file names the router and the metrics backend: private.
                self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
                _private(self.directory, 0o700)
                _private(_touch(self.directory / "state.db"), 0o600)  # SQLite's -wal, -shm copy it
                for name in ("state.db-wal", "state.db-shm", "audit.jsonl", "lock"):
                    _private(self.directory / name, 0o600)
                self._db = sqlite3.connect(self.directory / "state.db", isolation_level=None, timeout=10)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StateError(f"cannot open the state directory {self.directory}: {exc}") from exc
        self._next_seq = self._last_audit_seq() + 1

    # -- lifecycle -------------------------------------------------------------------------

    def lock(self) -> None:
        """Refuse to run two controllers on one state directory at once."""
        if self.directory is None or self._lock is not None:
            return
        handle = _touch(self.directory / "lock").open("ab")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise StateError(f"another controller is running on {self.directory}") from None
        self._lock = handle
        # Only the lock holder repairs the log: a reader (status, pause) that cut a "torn"
        # tail could cut the line a running controller is writing.
        _cut_torn_tail(self.directory / "audit.jsonl")
        self._next_seq = self._last_audit_seq() + 1

    @property
    def locked(self) -> bool:
        """Whether this store holds the directory's lock (always true in memory)."""
        return self.directory is None or self._lock is not None

    def close(self) -> None:
        if self._audit is not None:
            self._audit.close()
            self._audit = None
        if self._lock is not None:
            self._lock.close()  # closing releases the flock
            self._lock = None
        self._db.close()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- checkpoint ------------------------------------------------------------------------

    def load(self, name: str | None = None) -> RolloutState | None:
        """The stored state; ``StateError`` if it belongs to a rollout other than ``name``."""
        rows = self._query("SELECT name, body FROM state").fetchall()
        if not rows:
            return None
        stored_name, body = rows[0]
        if name is not None and stored_name != name:
            raise StateError(
                f"{self.directory} holds rollout {stored_name!r}, not {name!r}: use another --state-dir"
            )
        return RolloutState.from_json(body)

    def save(self, state: RolloutState) -> None:
        self._query("INSERT OR REPLACE INTO state (name, body) VALUES (?, ?)", state.name, state.to_json())

    def save_config(self, text: str) -> None:
        if not self.locked:
            raise StateError(f"{self.directory}: take the lock before storing the rollout file")
        self._query("INSERT OR REPLACE INTO config (id, body) VALUES (1, ?)", text)

    def load_config(self) -> str | None:
        row = self._query("SELECT body FROM config WHERE id = 1").fetchone()
        return None if row is None else str(row[0])

    # -- operator commands -----------------------------------------------------------------

    def put_command(self, command: Command, *, at: float) -> None:
        self._query("INSERT INTO commands (command, at) VALUES (?, ?)", command.value, at)

    def take_commands(self) -> list[Command]:
        """Commands not taken yet, oldest first; each is returned once."""
        rows = self._query("SELECT id, command FROM commands WHERE taken = 0 ORDER BY id").fetchall()
        if rows:
            self._query(f"UPDATE commands SET taken = 1 WHERE id <= {int(rows[-1][0])}")
        return [Command(command) for _, command in rows]

    # -- audit log -------------------------------------------------------------------------

    def next_seq(self) -> int:
        seq = self._next_seq
        self._next_seq += 1
        return seq

    def append(self, event: RolloutEvent) -> None:
        """Append one event and fsync it: once this returns, the event survives a crash."""
        if self.directory is None:
            self._memory_events.append(event)
            return
        line = (json.dumps(event.to_dict(), sort_keys=True, allow_nan=False) + "\n").encode()
        try:
            if self._audit is None:
                self._audit = _touch(self.directory / "audit.jsonl").open("ab")
            self._audit.write(line)
            self._audit.flush()
            os.fdatasync(self._audit.fileno())  # the data, without a metadata round trip
        except OSError as exc:
            raise StateError(f"cannot append to the audit log: {exc}") from exc

    def events(self) -> list[RolloutEvent]:
        """Every event in the audit log, in order."""
        if self.directory is None:
            return list(self._memory_events)
        return read_audit(self.directory / "audit.jsonl")

    # -- internals -------------------------------------------------------------------------

    def _query(self, sql: str, *args: Any) -> sqlite3.Cursor:
        try:
            return self._db.execute(sql, args)
        except sqlite3.Error as exc:
            raise StateError(f"rollout state database error: {exc}") from exc

    def _last_audit_seq(self) -> int:
        if self.directory is None:
            return 0
        events = read_audit(self.directory / "audit.jsonl")
        return events[-1].seq if events else 0


def read_audit(path: Path) -> list[RolloutEvent]:
    """Events of an audit log; a torn last line (crash mid-write) is skipped."""
    try:
        lines = path.read_bytes().splitlines()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise StateError(f"cannot read the audit log {path}: {exc}") from exc
    out: list[RolloutEvent] = []
    for number, raw in enumerate(lines, 1):
        try:
            out.append(RolloutEvent.from_dict(json.loads(raw)))
        except (ValueError, KeyError, TypeError) as exc:
            if number == len(lines):
                break
            raise StateError(f"audit log {path} line {number} is corrupt: {exc}") from exc
    return out


def _cut_torn_tail(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            with path.open("r+b") as fh:
                fh.truncate(data.rfind(b"\n") + 1)
                fh.flush()
                os.fsync(fh.fileno())


def _touch(path: Path) -> Path:
    """``path``, created empty and owner-only (0600) if it did not exist."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    return path


def _private(path: Path, mode: int) -> Path:
    # Tighten what an older version created; a directory someone else owns stays as it is.
    with contextlib.suppress(OSError):
        if path.stat().st_uid == os.getuid():
            path.chmod(mode)
    return path
