"""The demo's child processes: stopped whatever happens, and found again after a crash.

The demo starts HAProxy and Prometheus. They are stopped when the demo ends, when
it is interrupted (``Processes.stop_all``), and when it is killed outright: each
child asks Linux to be sent SIGTERM when its parent dies (``local.processes``).
As a last resort, each run records its children in a small file
(:func:`registry`), and the next demo removes the leftovers of a run that is gone
— only processes it can prove are that run's: the same pid *and* the same start
time (``/proc/<pid>/stat``) *and* the same program, so a recycled pid is never
touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import tempfile
import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol


class Backend(StrEnum):
    """Which router and metrics to use: real Debian servers, the embedded ones, or whichever exists."""

    AUTO = "auto"
    REAL = "real"
    EMBEDDED = "embedded"


class Stoppable(Protocol):
    def stop(self) -> None: ...


def registry() -> Path:
    """Where demo runs record their children: one private folder per user."""
    return Path(tempfile.gettempdir()) / f"canarypilot-demo-{os.getuid()}"


@dataclass
class Processes:
    """Child processes to stop, whatever happens to the event loop; ``record`` writes
    them down (in ``folder``) for the next demo should this one be killed."""

    items: list[Stoppable] = field(default_factory=list)
    folder: Path | None = field(default_factory=registry)

    def add(self, item: Stoppable) -> None:
        self.items.append(item)

    def record(self) -> None:
        """Write down the running children (call after starting one)."""
        if self.folder is None:
            return
        children = [_identity(p.proc.pid, p.argv[0]) for p in _processes(self.items)]
        body = {"demo": _identity(os.getpid(), "demo"), "children": [c for c in children if c]}
        with contextlib.suppress(OSError):
            self.folder.mkdir(mode=0o700, exist_ok=True)
            path = self._record_path()
            path.with_suffix(".tmp").write_text(json.dumps(body), encoding="utf-8")
            path.with_suffix(".tmp").replace(path)

    def stop_all(self) -> None:
        while self.items:
            item = self.items.pop()
            with contextlib.suppress(Exception):
                item.stop()
        if self.folder is not None:
            with contextlib.suppress(OSError):
                self._record_path().unlink()

    def _record_path(self) -> Path:
        assert self.folder is not None
        return self.folder / f"{os.getpid()}.json"


def clean_leftovers(folder: Path | None = None) -> list[str]:
    """Stop the children of earlier demo runs that are gone; what was stopped, described."""
    folder = registry() if folder is None else folder
    stopped: list[str] = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
            demo, children = body["demo"], list(body["children"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if _still_running(demo):
            continue  # another demo, alive: its children are its own business
        for child in children:
            if _still_running(child) and _stop_group(int(child["pid"])):
                stopped.append(f"{child['program']} (pid {child['pid']})")
        with contextlib.suppress(OSError):
            path.unlink()
    return stopped


def _processes(items: list[Stoppable]) -> list[Any]:
    found = []
    for item in items:
        process = getattr(item, "process", None)
        if process is not None and getattr(process, "running", False):
            found.append(process)
    return found


def _identity(pid: int, program: str) -> dict[str, Any] | None:
    started = _start_time(pid)
    return None if started is None else {"pid": pid, "started": started, "program": Path(program).name}


def _still_running(identity: Any) -> bool:
    """Whether the process ``identity`` describes is alive and provably the same one."""
    try:
        pid, started, program = int(identity["pid"]), identity["started"], str(identity["program"])
    except (KeyError, TypeError, ValueError):
        return False
    if _start_time(pid) != started:
        return False  # gone, or the pid was reused by another process
    if program == "demo":
        return True
    try:
        exe = Path(os.readlink(f"/proc/{pid}/exe")).name
    except OSError:
        return False
    return exe == program


def _start_time(pid: int) -> int | None:
    """The process' start time in clock ticks since boot (``/proc/<pid>/stat`` field 22)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    return int(fields[19]) if len(fields) > 19 else None


def _stop_group(pid: int) -> bool:
    """SIGTERM the process group ``pid`` leads (then SIGKILL after 5 s); whether it was one."""
    try:
        if os.getpgid(pid) != pid:
            return False  # not the leader of its own group, as our children are
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return False
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if _alive(pid):
            os.killpg(pid, signal.SIGKILL)
    return True


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")  # a zombie has exited; only its parent's wait is missing
