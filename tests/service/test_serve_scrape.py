"""`canarypilot serve` without Prometheus: the real command scrapes real loopback pods.

The pods (tests/cli/pods.py) expose prometheus_client metrics; the server
scrapes them every 0.5 s over a 3 s window and answers /analyze for the one
``--service`` it was started for. Other services hold: it has no data on them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from canarypilot.local.processes import free_port
from tests.cli.pods import Pod, Traffic
from tests.service.live import Served, _wait_alive

pytestmark = pytest.mark.integration

SETTINGS = "query: {window: 3s}\nscrape: {interval_seconds: 0.5}\nservice: {cache_ttl_seconds: 0.5}\n"


@contextmanager
def serve_scraping(workdir: Path, stable: Pod, canary: Pod) -> Iterator[Served]:
    port = free_port()
    config = workdir / "settings.yaml"
    config.write_text(SETTINGS)
    argv = [str(Path(sys.executable).with_name("canarypilot")), "serve", "--port", str(port)]
    argv += ["--config", str(config), "--service", "checkout"]
    argv += ["--scrape", f"v1-stable={stable.address}", "--scrape", f"v2-canary={canary.address}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANARYPILOT_")}
    with (workdir / "serve.log").open("wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    served = Served(f"http://127.0.0.1:{port}", process, workdir / "serve.log")
    try:
        _wait_alive(served)
        yield served
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def settled(served: Served, service: str, want: str, timeout: float = 15.0) -> dict[str, Any]:
    """The first decision with status ``want``, or the last one seen when time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = httpx.get(f"{served.url}/analyze", params={"service": service}).json()
        if body["status"] == want or time.monotonic() > deadline:
            return body
        time.sleep(0.5)


def test_healthy_pods_proceed_and_other_services_hold(tmp_path: Path) -> None:
    stable, canary = Pod("v1-stable", Traffic()), Pod("v2-canary", Traffic())
    try:
        with serve_scraping(tmp_path, stable, canary) as served:
            body = settled(served, "checkout", "proceed")
            assert body["status"] == "proceed" and body["canary"]["requests"] > 500, served.log()
            assert httpx.get(f"{served.url}/healthz").json()["status"] == "ready"
            other = httpx.get(f"{served.url}/analyze", params={"service": "billing"}).json()
            assert other["status"] == "hold" and other["weight"] is None
    finally:
        canary.stop()
        stable.stop()


def test_a_slow_canary_rolls_back(tmp_path: Path) -> None:
    stable, canary = Pod("v1-stable", Traffic()), Pod("v2-canary", Traffic(fast=0.06, slow=0.6))
    try:
        with serve_scraping(tmp_path, stable, canary) as served:
            body = settled(served, "checkout", "rollback")
            assert body["status"] == "rollback" and body["latency_delta"] > 1.0, served.log()
    finally:
        canary.stop()
        stable.stop()
