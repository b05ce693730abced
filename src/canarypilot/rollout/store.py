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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from canarypilot._exceptions import StateError
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
class RolloutState:
    """The checkpoint. ``weight`` is what the router last confirmed; ``pending`` is a
    router change decided but not yet confirmed: ``{"weight", "step", "phase", "reasons"}``."""

    name: str
    phase: Phase
    step: int
    steps: int
    weight: float
    started_at: float
    step_started_at: float
    next_analysis_at: float
    last_weight_change: float | None = None
    pending: dict[str, Any] | None = None
    consecutive: int = 0
    outage_since: float | None = None
    reasons: tuple[str, ...] = ()
    last_analysis: dict[str, Any] | None = None
    finished_at: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        body = asdict(self)
        body["phase"] = self.phase.value
        body["reasons"] = list(self.reasons)
        return json.dumps(body, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RolloutState:
        try:
            body = json.loads(text)
            body["phase"] = Phase(body["phase"])
            body["reasons"] = tuple(body.get("reasons") or ())
            return cls(**body)
        except (ValueError, TypeError, KeyError) as exc:
            raise StateError(f"stored rollout state is unreadable: {exc}") from exc

    def but(self, **changes: Any) -> RolloutState:
        return replace(self, **changes)


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
