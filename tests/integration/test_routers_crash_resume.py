"""SIGKILL a rollout at random moments, resume it each time: it converges, nothing lost or repeated."""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from canarypilot.local.haproxy import BACKEND, LocalHAProxy
from canarypilot.rollout import EventKind, Phase, StateStore
from canarypilot.routing.haproxy import HAProxyRouter
from tests.routing.backends import version_servers

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


async def test_sigkill_anywhere_then_resume_converges_with_a_complete_audit(tmp_path: Path) -> None:
    rng = random.Random(20240611)
    state = tmp_path / "state"
    kills = 0
    async with version_servers() as backends:
        with LocalHAProxy(tmp_path / "lb", stable=backends.stable, canary=backends.canary) as lb:

            def audit_lines() -> int:
                audit = state / "audit.jsonl"
                return len(audit.read_bytes().splitlines()) if audit.exists() else 0

            for attempt in range(7):
                lines_before = audit_lines()
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "tests.rollout.crash_driver", str(state), lb.runtime_socket,
                    cwd=ROOT, stdout=subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
                )  # fmt: skip
                if attempt < 6:
                    # once the process has logged its first event, kill it at a random moment
                    # (start-up time varies with the machine's load; kills during it prove nothing)
                    while audit_lines() == lines_before and proc.returncode is None:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(proc.wait(), timeout=0.02)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(proc.wait(), timeout=rng.uniform(0.0, 1.0))
                    if proc.returncode is None:
                        proc.send_signal(signal.SIGKILL)
                        await proc.wait()
                        kills += 1
                        assert proc.stderr is not None
                        await proc.stderr.read()
                        continue
                await asyncio.wait_for(proc.wait(), timeout=240)  # the judged ladder takes minutes
                assert proc.stderr is not None
                err = (await proc.stderr.read()).decode()
                assert proc.returncode == 0, err
                break
            else:
                pytest.fail("the rollout never finished")
            final_weight = await HAProxyRouter(lb.runtime_socket, backend=BACKEND).get_weight()

    assert kills >= 3, f"only {kills} kills landed mid-rollout"
    assert final_weight == 100.0
    with StateStore(state) as store:
        stored = store.load()
        events = store.events()
    assert stored is not None and stored.phase is Phase.PROMOTED and stored.pending is None
    assert [e.seq for e in events] == list(range(1, len(events) + 1))  # nothing lost, no torn line
    starts = [e.kind for e in events if e.kind in (EventKind.STARTED, EventKind.RESUMED)]
    assert starts.count(EventKind.STARTED) == 1 and starts.count(EventKind.RESUMED) >= kills
    # every weight the router confirmed, in order; a change re-sent after a kill shows up twice
    # in a row at most, and no step is skipped or taken twice
    confirmed = [e.data["requested"] for e in events if e.kind is EventKind.ROUTER]
    deduplicated = [w for i, w in enumerate(confirmed) if i == 0 or w != confirmed[i - 1]]
    assert deduplicated == [5.0, 10.0, 20.0, 40.0, 80.0, 100.0]
    steps = [e.step for e in events if e.kind is EventKind.ROUTER]
    assert steps == sorted(steps)
