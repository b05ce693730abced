"""`canarypilot operator` with 10 and 100 releases in flight on one control plane (etcd,
kube-apiserver, controller-manager, scheduler, kwok: tests/cluster's harness), each release
its own service in a real Prometheus (1 s samples, promtool backfill), one in ten regressed.

Per run: the PromQL queries Prometheus answered (its own ``prometheus_http_requests_total``)
per analysis interval (the 1 s slice of this compressed policy) while releases were in
flight, the operator's CPU seconds and peak RSS (/proc), how long until all ended, and for
each rollback the time from the decision to the canary route at 0 % (both instants from
the release's status history, written by the operator's clock).

``python -m benchmarks operator`` (needs Go for the control plane, ~10 minutes cold).
"""

from __future__ import annotations

import re
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from canarypilot.local.prometheus import LocalPrometheus
from tests.cluster import kube, operator_e2e
from tests.cluster.apiserver import Cluster, create_namespace
from tests.cluster.binaries import go_binary
from tests.cluster.controlplane import control_plane
from tests.cluster.test_argo_e2e import control_plane_parts
from tests.support.promdata import ServiceData, Traffic, openmetrics

CRD = Path(__file__).resolve().parents[1] / "deploy" / "operator" / "canaryrelease-crd.yaml"
SIZES = (10, 100)
QUERY = re.compile(r'prometheus_http_requests_total\{[^}]*handler="/api/v1/(query|query_range)"[^}]*\} (\S+)')


def _regressed(i: int) -> bool:
    return i % 10 == 0


def _prometheus(workdir: Path, releases: int) -> LocalPrometheus:
    end = float(int(time.time()) + 900)
    stable = Traffic("v1-stable", rps=200)
    healthy = Traffic("v2-canary", rps=200)
    slow = Traffic("v2-canary", rps=200, latency=((0.04, 0.9), (0.5, 0.1)))
    data = [
        ServiceData(
            f"svc{i:03d}", versions=(stable, slow if _regressed(i) else healthy), end=end,
            span_seconds=1200, interval_seconds=1,
        )
        for i in range(releases)
    ]  # fmt: skip
    return LocalPrometheus(workdir, openmetrics=openmetrics(*data))


def _queries(prom: LocalPrometheus) -> float:
    text = httpx.get(f"{prom.url}/metrics", timeout=10).text
    return sum(float(value) for _, value in QUERY.findall(text))


def _proc(pid: int) -> tuple[float, float]:
    """CPU seconds (user + system) and peak RSS in MiB of a live process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    hwm = next(
        line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("VmHWM")
    )
    return ticks / 100.0, int(hwm.split()[1]) / 1024


def _at(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _rollback_latency(status: dict[str, Any]) -> float | None:
    history = status.get("history") or []
    decided = [h for h in history if h["kind"] == "verdict" and str(h["message"]).startswith("rollback")]
    at_zero = [h for h in history if h["kind"] == "router" and h.get("weight") == 0.0]
    if not decided or not at_zero:
        return None
    return _at(at_zero[-1]["at"]) - _at(decided[0]["at"])


@contextmanager
def _cluster(workdir: Path) -> Iterator[Cluster]:
    go = go_binary()
    if go is None:
        raise SystemExit("go is not installed: cannot build the control plane")
    parts = control_plane_parts(go, "v1.7.2")
    parts = type(parts)(**{**parts.__dict__, "crds": [*parts.crds, CRD]})
    with control_plane(parts, workdir) as cluster:
        yield cluster


def _one(cluster: Cluster, workdir: Path, releases: int) -> dict[str, Any]:
    namespace = f"bench{releases}"
    apps = [f"svc{i:03d}" for i in range(releases)]
    with _prometheus(workdir / f"prom{releases}", releases) as prom, cluster.http() as http:
        create_namespace(http, namespace)
        for app in apps:
            kube.apply_all(http, operator_e2e.workload(namespace, app, f"registry.example/{app}:1"))
            kube.apply_all(
                http, [operator_e2e.canary_release(namespace, app, metrics_job=app, prometheus_url=prom.url)]
            )
        log = workdir / f"operator{releases}.log"
        with operator_e2e.running_operator(cluster, namespace, log, lease=("30", "5")) as process:

            def phases() -> dict[str, str]:
                items = kube.get(http, f"{operator_e2e.RELEASES}/namespaces/{namespace}/canaryreleases")[
                    "items"
                ]
                return {i["metadata"]["name"]: (i.get("status") or {}).get("phase", "") for i in items}

            kube.wait_for(
                "all adopted", lambda: True if set(phases().values()) == {"Idle"} else None, timeout=600
            )
            cpu_before, _ = _proc(process.pid)
            queries_before = _queries(prom)
            started = time.monotonic()
            for app in apps:
                operator_e2e.set_image(http, namespace, app, f"registry.example/{app}:2")
            final = {"Promoted", "RolledBack", "Failed", "Aborted"}
            ended = kube.wait_for(
                "all ended",
                lambda: phases() if set(phases().values()) <= final else None,
                timeout=1800,
                every=1.0,
            )
            elapsed = time.monotonic() - started
            cpu_after, rss = _proc(process.pid)
            queries = _queries(prom) - queries_before
            items = kube.get(http, f"{operator_e2e.RELEASES}/namespaces/{namespace}/canaryreleases")["items"]
        latencies = [
            lat for i in items if (lat := _rollback_latency(i.get("status") or {})) is not None
        ]  # fmt: skip
    expected = {app: "RolledBack" if _regressed(i) else "Promoted" for i, app in enumerate(apps)}
    return {
        "releases": releases,
        "right": sum(ended[a] == expected[a] for a in apps),
        "seconds": elapsed,
        "queries_per_interval": queries / elapsed,  # the slice (and analysis interval) is 1 s
        "cpu": cpu_after - cpu_before,
        "rss": rss,
        "rollback_median": statistics.median(latencies) if latencies else float("nan"),
        "rollback_max": max(latencies) if latencies else float("nan"),
        "rollbacks": len(latencies),
    }


def run(argv: list[str]) -> None:
    sizes = [int(a.split("=", 1)[1]) for a in argv if a.startswith("--releases=")] or list(SIZES)
    with tempfile.TemporaryDirectory(prefix="bench-operator-") as tmp, _cluster(Path(tmp)) as cluster:
        rows = [_one(cluster, Path(tmp), n) for n in sizes]
    print(
        f"{'releases':>8} {'ended right':>11} {'all ended':>10} {'queries/s':>10} {'per release':>11} "
        f"{'CPU s':>7} {'CPU/s':>6} {'peak RSS':>9} {'rollback→0 median/max':>22}"
    )
    for r in rows:
        print(
            f"{r['releases']:>8} {r['right']:>5}/{r['releases']:<5} {r['seconds']:>9.0f}s "
            f"{r['queries_per_interval']:>10.1f} {r['queries_per_interval'] / r['releases']:>11.2f} "
            f"{r['cpu']:>7.1f} {r['cpu'] / r['seconds']:>6.2f} {r['rss']:>7.0f}MB "
            f"{r['rollback_median']:>10.2f}s / {r['rollback_max']:.2f}s ({r['rollbacks']})"
        )
