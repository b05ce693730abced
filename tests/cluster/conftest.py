"""One real kube-apiserver (over a real etcd) for the cluster tests, with the routers' CRDs.

Building the binaries is part of the fixture: a failed build fails every test here
with the ``go build`` command and its error (only a machine without ``go`` skips).
Each test gets its own namespace, so tests never see each other's objects.
"""

from __future__ import annotations

import itertools
import secrets
import subprocess
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from canarypilot.routing.kubernetes import KubeClient
from tests.cluster.apiserver import (
    Cluster,
    LocalApiServer,
    LocalEtcd,
    create_namespace,
    install_crds,
    write_kubeconfig,
)
from tests.cluster.binaries import BuildFailed, ensure_binaries, go_binary
from tests.cluster.controllers import gateway_api_crd
from tests.support.argo_crds import argo_crds

_namespaces = itertools.count(1)


@pytest.fixture(scope="package")  # stopped once the last cluster test is done
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    go = go_binary()
    if go is None:
        pytest.skip("go is not installed: cannot build kube-apiserver and etcd")
    try:
        binaries = ensure_binaries(go)
    except BuildFailed as exc:
        pytest.fail(f"building kube-apiserver/etcd failed: {exc}")
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"building kube-apiserver/etcd took longer than {exc.timeout:g}s")
    if binaries.built_seconds is not None:
        print(f"built the Kubernetes binaries and etcd in {binaries.built_seconds:.0f}s")
    try:
        crds = [gateway_api_crd(go), argo_crds(go, "v1.7.2") / "rollout-crd.yaml"]
    except BuildFailed as exc:
        pytest.fail(f"fetching the CRDs failed: {exc}")
    workdir = tmp_path_factory.mktemp("cluster")
    token = secrets.token_urlsafe(24)
    started = time.monotonic()
    etcd = LocalEtcd(binaries.etcd, workdir)
    with etcd, LocalApiServer(binaries.kube_apiserver, workdir, etcd_url=etcd.url, token=token) as api:
        kubeconfig = write_kubeconfig(workdir / "kubeconfig", server=api.url, ca_pem=api.ca_pem, token=token)
        found = Cluster(url=api.url, kubeconfig=kubeconfig, token=token, ca_pem=api.ca_pem)
        with found.http() as http:
            install_crds(http, crds)
        print(f"etcd + kube-apiserver ready with CRDs in {time.monotonic() - started:.1f}s")
        yield found


@pytest.fixture
def namespace(cluster: Cluster) -> str:
    """A fresh namespace per test (namespaces are never deleted: no controller would finish it)."""
    name = f"t{next(_namespaces)}-{secrets.token_hex(3)}"
    with cluster.http() as http:
        create_namespace(http, name)
    return name


@pytest.fixture
async def client(cluster: Cluster) -> AsyncIterator[KubeClient]:
    """canarypilot's own client, configured the way a user's would be: from a kubeconfig."""
    kube = KubeClient.from_kubeconfig(cluster.kubeconfig)
    try:
        yield kube
    finally:
        await kube.aclose()
