"""A whole control plane for the end-to-end tests: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, kwok with one fake node, and the Argo Rollouts controller of one version.

Pods are real API objects: the ReplicaSet controller creates them, the scheduler binds
them to the kwok node and kwok reports them Running and Ready with an IP. Nothing runs
in them, which is all a Rollout needs: Argo moves traffic by writing the nginx canary
Ingress, and the analysis it runs calls a real ``canarypilot serve`` on loopback.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.cluster.apiserver import Cluster, LocalApiServer, LocalEtcd, install_crds, write_kubeconfig
from tests.cluster.binaries import Binaries
from tests.cluster.controllers import (
    LocalArgoRollouts,
    LocalControllerManager,
    LocalKwok,
    LocalScheduler,
)

NODE = "kwok-node-0"


@dataclass(frozen=True)
class ControlPlaneParts:
    """Everything a control plane is started from (binaries and the files it reads)."""

    kubernetes: Binaries
    kwok: Path
    kwok_stages: list[Path]
    argo: Path
    argo_version: str
    crds: list[Path]


@contextmanager
def control_plane(
    parts: ControlPlaneParts, workdir: Path, *, authorization: str = "AlwaysAllow"
) -> Iterator[Cluster]:
    """Start every component in order, each waited for; stop them all in reverse."""
    token = secrets.token_urlsafe(24)
    with ExitStack() as stack:
        etcd = stack.enter_context(LocalEtcd(parts.kubernetes.etcd, workdir))
        # No node lifecycle controller runs (kwok's nodes send no heartbeats), so nothing would
        # lift the not-ready taint this admission plugin puts on every new node.
        api = stack.enter_context(
            LocalApiServer(
                parts.kubernetes.kube_apiserver,
                workdir,
                etcd_url=etcd.url,
                token=token,
                extra_args=["--disable-admission-plugins=TaintNodesByCondition"],
                authorization=authorization,
            )
        )
        kubeconfig = write_kubeconfig(workdir / "kubeconfig", server=api.url, ca_pem=api.ca_pem, token=token)
        pid = api.process.proc.pid if api.process is not None else 0
        cluster = Cluster(url=api.url, kubeconfig=kubeconfig, token=token, ca_pem=api.ca_pem, api_pid=pid)
        with cluster.http() as http:
            install_crds(http, parts.crds)
        stack.enter_context(
            LocalControllerManager(parts.kubernetes.kube_controller_manager, workdir, kubeconfig)
        )
        stack.enter_context(LocalScheduler(parts.kubernetes.kube_scheduler, workdir, kubeconfig))
        stack.enter_context(LocalKwok(parts.kwok, workdir, kubeconfig, parts.kwok_stages))
        with cluster.http() as http:
            add_fake_node(http)
        stack.enter_context(LocalArgoRollouts(parts.argo, workdir, kubeconfig, parts.argo_version))
        yield cluster


def add_fake_node(http: httpx.Client, *, timeout: float = 30.0) -> None:
    """One node that kwok manages, with room for every test's pods; waits until it is Ready."""
    resources = {"cpu": "64", "memory": "256Gi", "pods": "500"}
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": NODE,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {"kubernetes.io/hostname": NODE, "kubernetes.io/os": "linux", "type": "kwok"},
        },
        "status": {"allocatable": resources, "capacity": resources},
    }
    created = http.post("/api/v1/nodes", json=node)
    if created.status_code not in (201, 409):
        raise RuntimeError(f"creating node {NODE}: {created.status_code} {created.text[:300]}")
    deadline = time.monotonic() + timeout
    while not _node_ready(http.get(f"/api/v1/nodes/{NODE}").json()):
        if time.monotonic() >= deadline:
            raise RuntimeError(f"node {NODE} not Ready after {timeout:g}s (is kwok managing it?)")
        time.sleep(0.2)


def _node_ready(node: dict[str, Any]) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
