"""canarypilot's own controller (`canarypilot rollout`) on the end-to-end cluster: the objects
it starts from, its rollout file, and running it as a user would (a child process that
may be SIGKILLed and resumed)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from canarypilot.local.prometheus import LocalPrometheus
from tests.support.promdata import ServiceData, Traffic, openmetrics

#: Seconds, not minutes: every step's pause, the analyses and the control loop compressed;
#: the breaker judges from the first analysis (the data is steady, no warm-up spike).
FAST_SETTINGS: dict[str, Any] = {
    "rollout": {
        "pauses_seconds": [3.0, 3.0, 3.0, 3.0],
        "scrape_lag_seconds": 0.0,
        "min_window_seconds": 2.0,
        "analysis_interval_seconds": 1.0,
        "control_poll_seconds": 0.1,
    },
    "breaker": {"warmup_seconds": 0.0},
    # The engine's time constants compressed with the 3 s steps (20 s and 180 s at the
    # article's pace): otherwise each rung waits for 22 one-second slices.
    "slo": {"max_transient_seconds": 2.0, "max_warmup_seconds": 9.0},
    # One-second slices of the one-second samples dense_prometheus writes.
    "query": {"slice_seconds": 1.0, "scrape_interval_seconds": 1.0},
}


@contextmanager
def dense_prometheus(workdir: Path, *, ahead_seconds: float = 600) -> Iterator[LocalPrometheus]:
    """Prometheus with a sample every second around now for `healthy` and `regressed`, for
    ``ahead_seconds`` to come: longer than every test that shares it runs, or the last ones
    judge stale data and hold.

    canarypilot's controller judges only samples taken since its last weight change (a
    few seconds here), so the data must be dense and busy: 200 requests/s per version.
    """
    end = float(int(time.time()) + ahead_seconds)
    stable = Traffic("v1-stable", rps=200)
    canaries = {
        "healthy": Traffic("v2-canary", rps=200),
        "regressed": Traffic("v2-canary", rps=200, latency=((0.04, 0.9), (0.5, 0.1))),
    }
    data = [
        ServiceData(
            name, versions=(stable, canary), end=end, span_seconds=ahead_seconds + 300, interval_seconds=1
        )
        for name, canary in canaries.items()
    ]
    with LocalPrometheus(workdir, openmetrics=openmetrics(*data)) as prom:
        yield prom


def services(namespace: str, app: str) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": f"{app}-{role}", "namespace": namespace},
            "spec": {"selector": {"app": app}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
        }
        for role in ("stable", "canary")
    ]


def stable_ingress(namespace: str, app: str) -> dict[str, Any]:
    backend = {"service": {"name": f"{app}-stable", "port": {"number": 80}}}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": app, "namespace": namespace},
        "spec": {
            "ingressClassName": "nginx",
            "rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}],
        },
    }


def http_route(namespace: str, app: str) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": app, "namespace": namespace},
        "spec": {
            "parentRefs": [{"name": "public"}],
            "rules": [{"backendRefs": [{"name": f"{app}-stable", "port": 80, "weight": 1000}]}],
        },
    }


def rollout_file(folder: Path, service: str, router: dict[str, Any], prometheus_url: str) -> Path:
    doc = {
        "name": service,
        "target": {"service": service},
        "router": router,
        "metrics": {"type": "prometheus", "url": prometheus_url},
        **FAST_SETTINGS,
    }
    path = folder / f"{service}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def rollout_command(*args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("canarypilot")), "rollout", "--quiet", *args]


def audit_lines(state: Path) -> int:
    audit = state / "audit.jsonl"
    return len(audit.read_bytes().splitlines()) if audit.exists() else 0


def run_killed_once_then_resumed(
    config: Path, state: Path, *, after_events: int
) -> subprocess.CompletedProcess[str]:
    """Start the rollout, SIGKILL it once ``after_events`` audit lines exist, then --resume it
    to its end; the resumed run's result."""
    first = subprocess.Popen(
        rollout_command("--config", str(config), "--state-dir", str(state)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while audit_lines(state) < after_events and first.poll() is None:
        if time.monotonic() >= deadline:
            first.kill()
            raise AssertionError("the rollout wrote no events within 60 s")
        time.sleep(0.02)
    if first.poll() is not None:
        raise AssertionError(
            f"the rollout ended before the kill ({first.returncode}): {first.communicate()[1]}"
        )
    first.send_signal(signal.SIGKILL)
    first.communicate()
    return subprocess.run(
        rollout_command("--resume", "--state-dir", str(state)),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
