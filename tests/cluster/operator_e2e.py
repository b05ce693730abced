"""`canarypilot operator` on the end-to-end cluster: the objects a release starts from, the
operator as a child process (SIGKILLable), and a watch that records every canary weight the
router was given."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.cluster.apiserver import Cluster
from tests.cluster.binaries import BuildFailed, go_binary
from tests.cluster.controlplane import control_plane
from tests.cluster.rollout_e2e import FAST_SETTINGS

RELEASES = "/apis/canarypilot.io/v1alpha1"
CRD = Path(__file__).resolve().parents[2] / "deploy" / "operator" / "canaryrelease-crd.yaml"
CANARY_WEIGHT = "nginx.ingress.kubernetes.io/canary-weight"
#: The rollout's compressed timings, and the analysis sliced by the data's own 1 s samples
#: (the default 30 s slices would make every step wait half a minute for its first slice).
POLICY: dict[str, Any] = FAST_SETTINGS


def workload(namespace: str, app: str, image: str) -> list[dict[str, Any]]:
    """A Deployment of 2 replicas, its Service and a stable Ingress in front."""
    labels = {"app": app}
    container = {"name": "app", "image": image, "ports": [{"containerPort": 8080}]}
    backend = {"service": {"name": app, "port": {"number": 80}}}
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": app, "namespace": namespace},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": app, "namespace": namespace},
            "spec": {"selector": labels, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": app, "namespace": namespace},
            "spec": {
                "ingressClassName": "nginx",
                "rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}],
            },
        },
    ]


def canary_release(namespace: str, app: str, *, metrics_job: str, prometheus_url: str) -> dict[str, Any]:
    return {
        "apiVersion": "canarypilot.io/v1alpha1",
        "kind": "CanaryRelease",
        "metadata": {"name": app, "namespace": namespace},
        "spec": {
            "workload": {"deployment": app},
            "service": {"name": app, "port": 80},
            "router": {"ingress": {"name": app}},
            "metrics": {"prometheus": {"url": prometheus_url}},
            "analysis": {"service": metrics_job},
            "policy": POLICY,
        },
    }


def release(http: httpx.Client, namespace: str, name: str) -> dict[str, Any]:
    answer = http.get(f"{RELEASES}/namespaces/{namespace}/canaryreleases/{name}")
    answer.raise_for_status()
    body: dict[str, Any] = answer.json()
    return body


def set_image(http: httpx.Client, namespace: str, name: str, image: str) -> None:
    containers = [{"name": "app", "image": image, "ports": [{"containerPort": 8080}]}]
    answer = http.patch(
        f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}",
        json={"spec": {"template": {"spec": {"containers": containers}}}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    answer.raise_for_status()


def operator_command(
    cluster: Cluster, namespace: str, lease: tuple[str, str] = ("4", "1"), lease_namespace: str | None = None
) -> list[str]:
    return [
        str(Path(sys.executable).with_name("canarypilot")),
        "operator",
        "run",
        "--kubeconfig",
        str(cluster.kubeconfig),
        "--namespace",
        namespace,
        "--lease-namespace",
        lease_namespace or namespace,
        "--lease-seconds",
        lease[0],
        "--renew-seconds",
        lease[1],
        "--poll-seconds",
        "0.5",
    ]


@contextmanager
def running_operator(
    cluster: Cluster,
    namespace: str,
    log: Path,
    *,
    lease: tuple[str, str] = ("4", "1"),
    lease_namespace: str | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    command = operator_command(cluster, namespace, lease, lease_namespace)
    with log.open("ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=out)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class WeightWatch:
    """Every canary-weight value the canary Ingress took, in order, from a watch stream."""

    def __init__(self, cluster: Cluster, namespace: str, ingress: str) -> None:
        self.weights: list[int] = []
        self._stop = threading.Event()
        self._url = f"/apis/networking.k8s.io/v1/namespaces/{namespace}/ingresses"
        self._selector = f"metadata.name={ingress}"
        self._cluster = cluster
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> WeightWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()

    def _run(self) -> None:
        try:
            self._follow()
        except httpx.HTTPError:  # the API server stopping at the end of the module
            return

    def _follow(self) -> None:
        with self._cluster.http() as http:
            params = {"watch": "1", "fieldSelector": self._selector, "timeoutSeconds": "300"}
            with http.stream("GET", self._url, params=params, timeout=None) as stream:
                for line in stream.iter_lines():
                    if self._stop.is_set():
                        return
                    if not line:
                        continue
                    obj = json.loads(line)["object"]
                    value = (obj.get("metadata", {}).get("annotations") or {}).get(CANARY_WEIGHT)
                    if value is not None and (not self.weights or self.weights[-1] != int(value)):
                        self.weights.append(int(value))


@contextmanager
def restarting_operator(cluster: Cluster, namespace: str, log: Path) -> Iterator[list[int]]:
    """The operator as Kubernetes runs it: started again whenever it exits (it stops on a lost
    Lease, exit 1). Yields the exit codes seen so far."""
    exits: list[int] = []
    stop = threading.Event()
    current: list[subprocess.Popen[bytes]] = []

    def loop() -> None:
        while not stop.is_set():
            with log.open("ab") as out:
                process = subprocess.Popen(operator_command(cluster, namespace), stdout=out, stderr=out)
            current[:] = [process]
            while process.poll() is None and not stop.is_set():
                stop.wait(0.2)
            if process.poll() is None:
                return
            exits.append(process.returncode)
            stop.wait(1.0)  # a restart back-off

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield exits
    finally:
        stop.set()
        thread.join(timeout=5)
        for process in current:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


@contextmanager
def operator_control_plane(workdir: Path, *, authorization: str = "AlwaysAllow") -> Iterator[Cluster]:
    """The end-to-end control plane with the CanaryRelease CRD installed (skips without Go)."""
    import pytest

    from tests.cluster.test_argo_e2e import control_plane_parts

    go = go_binary()
    if go is None:
        pytest.skip("go is not installed: cannot build the control plane")
    try:
        parts = control_plane_parts(go, "v1.7.2")
    except BuildFailed as exc:
        pytest.fail(f"building the control plane failed: {exc}")
    parts = type(parts)(**{**parts.__dict__, "crds": [*parts.crds, CRD]})
    with control_plane(parts, workdir, authorization=authorization) as running:
        yield running
