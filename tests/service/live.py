"""A real Prometheus holding four canaries, and a real `canarypilot serve` in front of it.

Shared by the service's end-to-end tests, the Argo contract test and the benchmark.
The data lies around *now* (from 15 minutes ago to 10 minutes ahead) because the
service queries at the wall-clock time, as it does in production.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from canarypilot.local.processes import free_port
from canarypilot.local.prometheus import LocalPrometheus
from tests.support.promdata import ServiceData, Traffic, openmetrics

#: 97% at 40 ms, 3% at 200 ms for the stable version (p99 in the (0.1, 0.25] bucket).
STABLE = Traffic("v1-stable", rps=20)


def scenarios(end: float, extra_services: Sequence[str] = ()) -> dict[str, ServiceData]:
    """healthy, slower (p99 +7%: safe weight 52.1), regressed (p99 +137%), error-regressed
    (+5 points of 5xx); `ghost` has no data."""

    def service(name: str, canary: Traffic) -> ServiceData:
        return ServiceData(name, versions=(STABLE, canary), end=end, span_seconds=1500, interval_seconds=30)

    out = {
        "healthy": service("healthy", Traffic("v2-canary", rps=5)),
        "slower": service("slower", Traffic("v2-canary", rps=5, latency=((0.04, 0.9583), (0.2, 0.0417)))),
        "regressed": service("regressed", Traffic("v2-canary", rps=5, latency=((0.04, 0.9), (0.5, 0.1)))),
        "error-regressed": service("error-regressed", Traffic("v2-canary", rps=5, error_fraction=0.05)),
    }
    for name in extra_services:
        out[name] = service(name, Traffic("v2-canary", rps=5))
    return out


@contextmanager
def live_prometheus(workdir: Path, extra_services: Sequence[str] = ()) -> Iterator[LocalPrometheus]:
    """Prometheus on a free port with the scenarios' data around now."""
    end = float(int(time.time()) + 600)
    text = openmetrics(*scenarios(end, extra_services).values())
    with LocalPrometheus(workdir, openmetrics=text) as prom:
        yield prom


@dataclass
class Served:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def serve(
    prometheus_url: str | None,
    workdir: Path,
    *args: str,
    config: str | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[Served]:
    """`canarypilot serve` in a child process on a free port; SIGTERM and wait on exit.

    Without ``prometheus_url`` it serves from the embedded scraper (pass ``--scrape``
    in ``args``). The child sees none of this shell's ``CANARYPILOT_*`` settings,
    only those in ``env``.
    """
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"serve-{port}.log"
    argv = [str(Path(sys.executable).with_name("canarypilot")), "serve"]
    if prometheus_url is not None:
        argv += ["--prometheus", prometheus_url]
    argv += ["--port", str(port), *args]
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("CANARYPILOT_")}
    if config:
        argv += ["--config", config]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Nothing says the data is 30 s apart: the analyzer measures it.
            env={**inherited, **(env or {})},
            start_new_session=True,
        )
    served = Served(f"http://127.0.0.1:{port}", process, log_path)
    try:
        _wait_alive(served)
        yield served
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def _wait_alive(served: Served, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if served.process.poll() is not None:
            raise RuntimeError(f"serve exited with {served.process.returncode}:\n{served.log()}")
        try:
            if httpx.get(f"{served.url}/livez", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"serve did not come up in {timeout:g}s:\n{served.log()}")


def prometheus_queries(prom: LocalPrometheus) -> float:
    """How many instant and range queries Prometheus has answered, from its own /metrics."""
    text = httpx.get(f"{prom.url}/metrics", timeout=5.0).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("prometheus_http_requests_total{") and (
            'handler="/api/v1/query"' in line or 'handler="/api/v1/query_range"' in line
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total
