"""The operator's shipped RBAC on a control plane that enforces RBAC: a release promoted end to
end by `canarypilot operator run` holding only the token of the ServiceAccount that
`canarypilot operator manifests` creates, and the API server's own answers to what that
identity may not do (delete, list Secrets, read an unnamed Secret, edit a release's spec,
touch Pods or another namespace's Lease; with ``--watch-namespace``, anything outside it).

The admin token of the harness is in ``system:masters`` (RBAC lets it do everything): the
control plane's own components and the test's set-up use it, the operator never does.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from canarypilot.render.operator import OPERATOR, OperatorOptions, operator_objects
from tests.cluster import kube, operator_e2e
from tests.cluster.apiserver import Cluster, create_namespace, write_kubeconfig
from tests.cluster.operator_e2e import WeightWatch, canary_release, running_operator, set_image, workload
from tests.cluster.rollout_e2e import dense_prometheus

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SYSTEM = "canarypilot"  # where the operator runs (and its Lease)
APPS = "apps"
SCOPED = "canarypilot-scoped"  # a second install that watches only SCOPED_APPS
SCOPED_APPS = "team-a"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with operator_e2e.operator_control_plane(
        tmp_path_factory.mktemp("rbac-cp"), authorization="RBAC"
    ) as running:
        with running.http() as http:
            for namespace in (SYSTEM, APPS, SCOPED, SCOPED_APPS):
                create_namespace(http, namespace)
            kube.apply_all(
                http, operator_objects(OperatorOptions(namespace=SYSTEM, secret_names=("prom-token",)))
            )
            scoped = operator_objects(
                OperatorOptions(namespace=SCOPED, watch_namespace=SCOPED_APPS, secret_names=("prom-token",))
            )
            # The ClusterRole is shared (same name, same rules): the second install adds its bindings.
            kube.apply_all(http, [d for d in scoped if d["kind"] != "ClusterRole"])
        yield running


def service_account_kubeconfig(cluster: Cluster, namespace: str, path: Path) -> Cluster:
    """A kubeconfig holding a real token of the operator's ServiceAccount (TokenRequest API)."""
    request = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"expirationSeconds": 3600},
    }
    with cluster.http() as http:
        answer = http.post(f"/api/v1/namespaces/{namespace}/serviceaccounts/{OPERATOR}/token", json=request)
    assert answer.status_code == 201, answer.text
    token = answer.json()["status"]["token"]
    kubeconfig = write_kubeconfig(path, server=cluster.url, ca_pem=cluster.ca_pem, token=token)
    return dataclasses.replace(cluster, kubeconfig=kubeconfig, token=token)


def may(identity: Cluster, verb: str, resource: str, namespace: str | None, *, group: str = "",
        name: str | None = None, subresource: str | None = None) -> bool:  # fmt: skip
    """The API server's own answer (SelfSubjectAccessReview) for the identity's token."""
    attributes: dict[str, Any] = {"verb": verb, "resource": resource, "group": group}
    for key, value in (("namespace", namespace), ("name", name), ("subresource", subresource)):
        if value is not None:
            attributes[key] = value
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": attributes},
    }
    with identity.http() as http:
        answer = http.post("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", json=review)
    assert answer.status_code == 201, answer.text
    return bool(answer.json()["status"].get("allowed"))


def test_the_shipped_rbac_is_enough_to_promote_a_release(
    cluster: Cluster, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    operator = service_account_kubeconfig(cluster, SYSTEM, tmp_path / "operator.kubeconfig")
    with cluster.http() as http:
        assert http.get(f"/api/v1/namespaces/{SYSTEM}/serviceaccounts/{OPERATOR}").status_code == 200
    with dense_prometheus(tmp_path_factory.mktemp("rbac-prom")) as prom, cluster.http() as http:
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "prom-token", "namespace": APPS},
            "stringData": {"token": "not-checked-by-this-prometheus"},
        }
        release = canary_release(APPS, "web", metrics_job="healthy", prometheus_url=prom.url)
        release["spec"]["metrics"]["prometheus"]["authSecretRef"] = {"name": "prom-token", "key": "token"}
        kube.apply_all(http, [secret, *workload(APPS, "web", "registry.example/web:1"), release])
        log = tmp_path / "operator.log"
        with (
            running_operator(operator, APPS, log, lease_namespace=SYSTEM),
            WeightWatch(cluster, APPS, "web-canary") as watch,
        ):
            idle = _wait_phase(http, "Idle", log, timeout=30)
            assert idle["phase"] == "Idle"
            time.sleep(1)  # the primary's pods (kwok) become Ready; adoption waited for them
            set_image(http, APPS, "web", "registry.example/web:2")
            done = _wait_phase(http, "Promoted", log, timeout=120, also=("RolledBack", "Failed"))
        assert done["phase"] == "Promoted", (done, log.read_text()[-2000:])
        assert watch.weights[-1] == 0 and 1000 in watch.weights, watch.weights
        text = log.read_text()
        assert "HTTP/1.1 403" not in text and "forbidden" not in text.lower(), text[-2000:]
        assert "not-checked-by-this-prometheus" not in text  # the Secret's value is never logged
        lease = kube.get(
            http, f"/apis/coordination.k8s.io/v1/namespaces/{SYSTEM}/leases/canarypilot-operator"
        )
        assert lease["spec"]["holderIdentity"]


def _wait_phase(
    http: httpx.Client, phase: str, log: Path, *, timeout: float, also: tuple[str, ...] = ()
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        current: dict[str, Any] = operator_e2e.release(http, APPS, "web").get("status") or {}
        return current if current.get("phase") in (phase, *also) else None

    try:
        return kube.wait_for(f"phase {phase}", probe, timeout=timeout)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; operator log: {log.read_text()[-2000:]}") from None


def test_the_operator_may_do_nothing_it_does_not_need(cluster: Cluster, tmp_path: Path) -> None:
    operator = service_account_kubeconfig(cluster, SYSTEM, tmp_path / "operator.kubeconfig")
    crel = "canarypilot.io"
    granted = [
        ("list", "canaryreleases", APPS, crel, None, None),
        ("patch", "canaryreleases", APPS, crel, "web", None),  # its finalizer
        ("update", "canaryreleases", APPS, crel, None, "status"),
        ("patch", "deployments", APPS, "apps", "web", None),
        ("create", "services", APPS, "", None, None),
        ("patch", "ingresses", APPS, "networking.k8s.io", "web-canary", None),
        ("update", "httproutes", APPS, "gateway.networking.k8s.io", "web", None),
        ("create", "events", APPS, "", None, None),
        ("get", "secrets", APPS, "", "prom-token", None),
        ("update", "leases", SYSTEM, "coordination.k8s.io", "canarypilot-operator", None),
    ]
    refused = [
        ("update", "canaryreleases", APPS, crel, "web", None),  # a whole new object: never
        ("delete", "canaryreleases", APPS, crel, "web", None),
        ("delete", "deployments", APPS, "apps", "web", None),
        ("list", "deployments", APPS, "apps", None, None),
        ("list", "secrets", APPS, "", None, None),
        ("get", "secrets", APPS, "", "db-password", None),
        ("create", "pods", APPS, "", None, None),
        ("delete", "ingresses", APPS, "networking.k8s.io", "web", None),
        ("update", "leases", SYSTEM, "coordination.k8s.io", "kube-scheduler", None),
        ("create", "leases", APPS, "coordination.k8s.io", None, None),
        ("list", "nodes", None, "", None, None),
        ("create", "clusterrolebindings", None, "rbac.authorization.k8s.io", None, None),
    ]
    check = lambda row: may(operator, row[0], row[1], row[2], group=row[3], name=row[4], subresource=row[5])  # noqa: E731
    assert [row for row in granted if not check(row)] == []
    assert [row for row in refused if check(row)] == []


def test_a_namespace_scoped_install_reaches_only_its_namespace(cluster: Cluster, tmp_path: Path) -> None:
    scoped = service_account_kubeconfig(cluster, SCOPED, tmp_path / "scoped.kubeconfig")
    assert may(scoped, "list", "canaryreleases", SCOPED_APPS, group="canarypilot.io")
    assert may(scoped, "patch", "deployments", SCOPED_APPS, group="apps", name="web")
    assert may(scoped, "update", "leases", SCOPED, group="coordination.k8s.io", name="canarypilot-operator")
    assert not may(scoped, "list", "canaryreleases", APPS, group="canarypilot.io")
    assert not may(scoped, "list", "canaryreleases", None, group="canarypilot.io")  # not cluster-wide
    assert not may(scoped, "patch", "deployments", APPS, group="apps", name="web")
    assert not may(scoped, "get", "secrets", APPS, name="prom-token")
    # What it prints for that install says the same: a RoleBinding in the watched namespace.
    objects = operator_objects(OperatorOptions(namespace=SCOPED, watch_namespace=SCOPED_APPS))
    binding = next(o for o in objects if o.get("roleRef", {}).get("kind") == "ClusterRole")
    assert (binding["kind"], binding["metadata"]["namespace"]) == ("RoleBinding", SCOPED_APPS)
    assert "--namespace" in yaml.safe_dump(objects)
