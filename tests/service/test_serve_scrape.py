"""`canarypilot serve` without Prometheus: the real command scrapes real loopback pods.

The pods (tests/cli/pods.py) expose prometheus_client metrics; the server
scrapes them every 0.5 s over a 3 s window and answers /analyze for the one
``--service`` it was started for. Other services hold: it has no data on them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli.pods import Pod, Traffic
from tests.service.live import Served, serve

pytestmark = pytest.mark.integration

SETTINGS = (
    "query: {window: 3s, slice_seconds: 1}\nscrape: {interval_seconds: 0.5}\n"
    "service: {cache_ttl_seconds: 0.5}\n"
    "rollout: {scrape_lag_seconds: 0.5}\nslo: {max_transient_seconds: 2, max_warmup_seconds: 3}\n"
)


@contextmanager
def serve_scraping(workdir: Path, stable: Pod, canary: Pod) -> Iterator[Served]:
    config = workdir / "settings.yaml"
    workdir.mkdir(parents=True, exist_ok=True)
    config.write_text(SETTINGS)
    args = ["--service", "checkout"]
    args += ["--scrape", f"v1-stable={stable.address}", "--scrape", f"v2-canary={canary.address}"]
    with serve(None, workdir, *args, config=str(config)) as served:
        yield served


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
