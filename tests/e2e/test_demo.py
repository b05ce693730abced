"""`canarypilot demo` end to end: every scenario reaches its expected outcome.

Real sample services, real traffic and the real controller, in the ``--fast``
pacing; once with the embedded proxy and scraper, once with HAProxy and
Prometheus from Debian's packages. About 3-4 minutes per backend.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from canarypilot.demo import FAST, SCENARIOS, Backend, Behaviour, DemoOptions, Expected, Scenario, run_demo
from canarypilot.demo.children import Processes
from canarypilot.demo.runner import DemoResult
from canarypilot.local.processes import require
from canarypilot.rollout.events import EventKind
from tests.support.workers import parameter

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def xdist_subgroup(item: pytest.Item) -> str | None:
    """Each scenario's two runs (embedded, real) on a worker of their own (tests/conftest.py)."""
    return parameter(item, "name")


def _need_real(backend: Backend) -> None:
    if backend is Backend.REAL:
        for binary, package in (("haproxy", "haproxy"), ("prometheus", "prometheus")):
            try:
                require(binary, package)
            except Exception as exc:
                pytest.skip(str(exc))


def _story(result: DemoResult) -> str:
    lines = [result.headline]
    for row in result.record.rows():
        lines.append(
            f"  {row.at - result.record.started:5.1f}s {row.weight:5.1f}% {row.action}: {row.reason}"
        )
    return "\n".join(lines)


def _verdict_reasons(result: DemoResult) -> list[str]:
    return [r for e in result.record.events if e.kind is EventKind.VERDICT for r in e.data.get("reasons", [])]


@pytest.mark.parametrize("backend", [Backend.EMBEDDED, Backend.REAL])
@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_each_scenario_reaches_its_expected_outcome(
    name: str, backend: Backend, tmp_path: Path
) -> None:
    _need_real(backend)
    scenario = SCENARIOS[name]
    processes = Processes()
    options = DemoOptions(scenario, FAST, router=backend, metrics=backend, state_dir=tmp_path, seed=11)
    result = await run_demo(options, processes=processes)

    assert result.outcome == scenario.expected.value, _story(result)
    assert result.ok and result.headline.startswith("PASS")
    assert processes.items == []  # every child process was stopped
    page, *charts = result.files
    assert "<img" in page.read_text() and all(c.stat().st_size > 10_000 for c in charts)
    assert (result.run_dir / "audit.jsonl").stat().st_size > 0

    rows = result.record.rows()
    weights = [w for _, w in result.record.weights()]
    if scenario.expected is Expected.PROMOTED:
        # Climbed the ladder (5, 10, 20, then the cap of 40 or a lower safe weight: a warm-up
        # still fading can read 34) before promoting; never jumped to 100 from the start.
        climbed = [w for w in weights[:-1] if w > 0]
        assert weights[-1] == 100 and len(climbed) >= 4, _story(result)
        assert climbed[0] <= 6 and max(climbed) >= 19, _story(result)
    else:
        assert weights[-1] == 0
    reasons = " ".join(_verdict_reasons(result))
    if name == "warmup-spike":
        # the spike was seen and forgiven by the warm-up grace at least once
        assert "warm-up" in reasons, _story(result)
    # the rollback names the signal whose evidence decided it
    if name == "error-regression":
        assert "rejects the error rate delta" in rows[-1].reason, _story(result)
    if name == "latency-regression":
        assert "rejects the p99 latency delta" in rows[-1].reason, _story(result)
    if name == "capacity-knee":
        assert max(weights) > 30, _story(result)  # fine below the knee...
        assert all(r.action != "rollback" for r in rows if r.weight < 25)
        assert "sequential test rejects the" in rows[-1].reason, _story(result)  # ...then harm above it


async def test_an_unexpected_outcome_is_reported_as_a_failure(tmp_path: Path) -> None:
    wrong = Scenario(
        "wrongly-expected",
        "a failing canary expected to pass",
        Expected.PROMOTED,
        canary=Behaviour(error_rate=0.2),
    )
    result = await run_demo(
        DemoOptions(wrong, FAST, router=Backend.EMBEDDED, metrics=Backend.EMBEDDED, state_dir=tmp_path)
    )
    assert result.outcome == "rolled_back"
    assert not result.ok and result.headline.startswith("FAIL")
    assert "FAIL" in result.files[0].read_text()


def _demo(*args: str, tmp_path: Path) -> subprocess.Popen[str]:
    # A shell that starts a job in the background (CI harnesses do) leaves SIGINT ignored for
    # its children, and Python then keeps it ignored: give the demo Ctrl-C back, as a terminal would.
    cli = (
        "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "from canarypilot.cli import main; main()"
    )
    command = [sys.executable, "-c", cli, "demo", "--fast", "--state-dir", str(tmp_path), *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_the_command_exits_0_on_the_expected_outcome(tmp_path: Path) -> None:
    proc = _demo("--scenario", "error-regression", "--backend", "embedded", "--no-live", tmp_path=tmp_path)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    assert "PASS error-regression: rolled back" in out
    assert "verdict: ROLLBACK" in out  # the plain progress lines
    report = Path(out.strip().splitlines()[-1].removeprefix("report: "))
    assert report.exists() and report.parent.parent == tmp_path


def _children(pid: int) -> list[str]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == str(pid):  # after the command: state, ppid, ...
            found.append(stat.parent.name)
    return found


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_demo_stops_everything_it_started(sig: signal.Signals, tmp_path: Path) -> None:
    _need_real(Backend.REAL)
    proc = _demo("--scenario", "healthy", "--backend", "real", "--no-live", tmp_path=tmp_path)
    children: list[str] = []
    deadline = time.monotonic() + 60
    while len(children) < 2 and time.monotonic() < deadline:  # HAProxy and Prometheus are up
        time.sleep(0.5)
        children = _children(proc.pid)
    assert len(children) == 2
    assert proc.stdout is not None
    while "router: canary weight set" not in proc.stdout.readline():  # mid-rollout, not at start-up
        assert time.monotonic() < deadline and proc.poll() is None
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == (130 if sig is signal.SIGINT else 143)
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    # what happened until then is not lost: the report says the run was interrupted
    report = Path(err.strip().rsplit("report so far: ", 1)[1])
    assert report.exists() and report.is_relative_to(tmp_path)
    assert "got <b>interrupted</b>" in report.read_text()
    assert not [pid for pid in children if os.path.exists(f"/proc/{pid}")]
