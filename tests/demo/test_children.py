"""A killed demo leaves nothing running (issue 12): its children die with it, and the
next demo removes the leftovers it can prove are an earlier run's — nothing else."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from canarypilot.demo.children import Processes, clean_leftovers
from canarypilot.local.processes import ManagedProcess

SLEEP = "/bin/sleep"


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


class Sleeper:
    """A stand-in for a local server: a ManagedProcess the demo would start."""

    def __init__(self, log: Path) -> None:
        self.process: ManagedProcess | None = ManagedProcess([SLEEP, "120"], log_path=log)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None


def test_children_die_with_a_sigkilled_parent(tmp_path: Path) -> None:
    # A parent that starts a server-like child, records it, then is killed with SIGKILL:
    # no cleanup code of its own runs, and the child must still go.
    script = f"""
import sys, time
from pathlib import Path
from canarypilot.local.processes import ManagedProcess
child = ManagedProcess([{SLEEP!r}, "120"], log_path=Path({str(tmp_path / "log")!r}))
print(child.proc.pid, flush=True)
time.sleep(120)
"""
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert alive(child)
    parent.send_signal(signal.SIGKILL)
    parent.wait(5)
    parent.stdout.close()
    assert wait_gone(child, within=5), "the child outlived its SIGKILLed parent"


def test_the_next_demo_stops_what_a_dead_run_recorded(tmp_path: Path) -> None:
    processes = Processes(folder=tmp_path)
    sleeper = Sleeper(tmp_path / "log")
    processes.add(sleeper)
    processes.record()
    assert sleeper.process is not None
    pid = sleeper.process.proc.pid
    record = tmp_path / f"{os.getpid()}.json"
    body = json.loads(record.read_text())
    # Pretend the recording demo is gone: a start time no process of that pid has.
    body["demo"]["started"] = -1
    record.write_text(json.dumps(body))

    stopped = clean_leftovers(tmp_path)
    sleeper.process.proc.wait(5)  # reap it (this test is its parent)
    sleeper.stop()  # closes its log; the process is already gone
    assert stopped == [f"sleep (pid {pid})"]
    assert not alive(pid) and not record.exists()


@pytest.mark.parametrize("changed", ["child started", "child program", "demo alive"])
def test_nothing_that_cannot_be_proven_ours_is_touched(tmp_path: Path, changed: str) -> None:
    processes = Processes(folder=tmp_path)
    sleeper = Sleeper(tmp_path / "log")
    processes.add(sleeper)
    processes.record()
    assert sleeper.process is not None
    record = tmp_path / f"{os.getpid()}.json"
    body = json.loads(record.read_text())
    if changed != "demo alive":
        body["demo"]["started"] = -1
    if changed == "child started":
        body["children"][0]["started"] += 1  # the pid was reused by another process
    if changed == "child program":
        body["children"][0]["program"] = "prometheus"
    record.write_text(json.dumps(body))
    try:
        assert clean_leftovers(tmp_path) == []
        assert alive(sleeper.process.proc.pid)
    finally:
        processes.stop_all()
    assert not record.exists(), "a clean stop removes its own record"
