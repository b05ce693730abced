"""`canarypilot rollout` as a user runs it: a real process, real HAProxy, real /metrics scraping."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from canarypilot.local.haproxy import BACKEND, LocalHAProxy
from tests.rollout.exporter import Exporter

CLI = [sys.executable, "-c", "from canarypilot.cli import main; main()"]


def cli(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def write_config(path: Path, socket: str, stable: str, canary: str, **extra: object) -> Path:
    config = {
        "name": "checkout",
        "target": {"service": "checkout"},
        "router": {"type": "haproxy", "runtime_api": socket, "backend": BACKEND},
        "metrics": {
            "type": "scrape",
            "targets": {"v1-stable": [stable], "v2-canary": [canary]},
            "interval_seconds": 0.25,
        },
        "rollout": {
            "pauses_seconds": [1.5, 1.5, 1.5],
            "scrape_lag_seconds": 0.3,
            "min_window_seconds": 1.0,
            "analysis_interval_seconds": 0.5,
            "control_poll_seconds": 0.1,
        },
        "slo": {"min_canary_requests": 10},
        "query": {"slice_seconds": 0.5},
        "breaker": {"warmup_seconds": 1.0},
        **extra,
    }
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.integration
def test_a_healthy_canary_is_promoted_and_a_slow_one_rolled_back(tmp_path: Path) -> None:
    with (
        Exporter() as stable,
        Exporter() as canary,
        LocalHAProxy(tmp_path / "lb", stable=stable.address, canary=canary.address) as lb,
    ):
        config = write_config(tmp_path / "ok.yaml", lb.runtime_socket, stable.address, canary.address)
        done = cli("rollout", "--config", str(config), "--state-dir", "ok", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout.splitlines()[-1])["phase"] == "promoted"
        assert "(asked 5%)" in done.stdout and "router confirmed 100% (asked 100%)" in done.stdout
        status = cli("rollout", "status", "--state-dir", "ok", "--format", "json", cwd=tmp_path)
        assert json.loads(status.stdout)["phase"] == "promoted"

        canary.slow = True
        config = write_config(tmp_path / "bad.yaml", lb.runtime_socket, stable.address, canary.address)
        done = cli("rollout", "--config", str(config), "--state-dir", "bad", "--quiet", cwd=tmp_path)
        assert done.returncode == 4, done.stderr
        outcome = json.loads(done.stdout)
        assert outcome["phase"] == "rolled_back" and outcome["weight"] == 0
        assert any("p99 latency delta" in r for r in outcome["reasons"])


@pytest.mark.integration
def test_abort_from_another_terminal_exits_5(tmp_path: Path) -> None:
    with (
        Exporter() as stable,
        Exporter() as canary,
        LocalHAProxy(tmp_path / "lb", stable=stable.address, canary=canary.address) as lb,
    ):
        config = write_config(tmp_path / "r.yaml", lb.runtime_socket, stable.address, canary.address)
        run = subprocess.Popen(
            [*CLI, "rollout", "--config", str(config), "--state-dir", "st"],
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not (tmp_path / "st" / "audit.jsonl").exists():
                time.sleep(0.05)
            paused = cli("rollout", "pause", "--state-dir", "st", cwd=tmp_path)
            assert paused.returncode == 0 and "within a second" in paused.stdout
            aborted = cli("rollout", "abort", "--state-dir", "st", cwd=tmp_path)
            assert aborted.returncode == 0, aborted.stderr
            out, err = run.communicate(timeout=30)
        finally:
            run.kill() if run.poll() is None else None
        assert run.returncode == 5, err
        assert "operator command: pause" in out and "operator command: abort" in out
        assert json.loads(out.splitlines()[-1])["phase"] == "aborted"


def test_usage_errors_are_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: x\ntarget: {service: x}\nrouter: {type: carrier-pigeon}\nmetrics: {type: prometheus}\n"
    )
    for args, expected in (
        (["rollout"], "give --config FILE"),
        (["rollout", "--config", str(bad)], "router"),
        (["rollout", "--config", str(tmp_path / "missing.yaml")], "cannot read rollout file"),
        (["rollout", "status", "--state-dir", str(tmp_path / "none")], "no rollout in"),
        (["rollout", "--resume", "--state-dir", str(tmp_path / "none")], "nothing to resume"),
    ):
        done = cli(*args, cwd=tmp_path)
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.count("\n") == 1 and expected in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
