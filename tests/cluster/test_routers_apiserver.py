"""The Kubernetes routers against a real kube-apiserver: what they write is what the cluster keeps.

Each test creates the objects a user would have (a stable Ingress, an HTTPRoute, a
Rollout) in its own namespace, drives the router through its public API over a
kubeconfig, and reads every result twice: through the router and by GETting the
object from the API server. The server applies its own validation (built-in types,
the CRDs' schemas and CEL rules), defaulting, resourceVersions and ``/status``
subresources, none of which the fake in tests/routing reproduces.
"""

from __future__ import annotations

import ssl
from typing import Any

import pytest

from canarypilot._exceptions import RouterError, RouterUnavailable
from canarypilot.routing.argo import ArgoRolloutRouter
from canarypilot.routing.gateway import HTTPRouteRouter
from canarypilot.routing.ingress import CANARY, TOTAL, WEIGHT, IngressRouter
from canarypilot.routing.kubernetes import KubeClient, NotFound
from tests.cluster.apiserver import Cluster
from tests.cluster.binaries import KUBERNETES_VERSION
from tests.support.kube_objects import stable_ingress

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LADDER = (5.0, 25.0, 100.0, 0.0)


def ingresses(namespace: str) -> str:
    return f"/apis/networking.k8s.io/v1/namespaces/{namespace}/ingresses"


def routes(namespace: str) -> str:
    return f"/apis/gateway.networking.k8s.io/v1/namespaces/{namespace}/httproutes"


def rollouts(namespace: str) -> str:
    return f"/apis/argoproj.io/v1alpha1/namespaces/{namespace}/rollouts"


def create(cluster: Cluster, path: str, body: dict[str, Any]) -> dict[str, Any]:
    with cluster.http() as http:
        answer = http.post(path, json=body)
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def fetch(cluster: Cluster, path: str) -> dict[str, Any]:
    with cluster.http() as http:
        answer = http.get(path)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def patch_status(cluster: Cluster, path: str, status: dict[str, Any]) -> None:
    """What a controller does: write ``status`` through the subresource."""
    with cluster.http() as http:
        answer = http.patch(
            f"{path}/status",
            json={"status": status},
            headers={"Content-Type": "application/merge-patch+json"},
        )
    assert answer.status_code == 200, answer.text


# --- nginx-ingress ------------------------------------------------------------------------------


async def test_ingress_canary_is_created_once_then_its_weight_moves_and_rolls_back_to_zero(
    cluster: Cluster, client: KubeClient, namespace: str
) -> None:
    stable = create(cluster, ingresses(namespace), stable_ingress())
    router = IngressRouter(client, namespace=namespace, stable_ingress="web", canary_service="web-canary")
    assert await router.get_weight() == 0.0  # no canary Ingress yet

    uids = set()
    for weight in LADDER:
        await router.set_weight(weight)
        assert await router.get_weight() == weight
        canary = fetch(cluster, f"{ingresses(namespace)}/web-canary")
        annotations = canary["metadata"]["annotations"]
        assert annotations[CANARY] == "true"
        assert int(annotations[WEIGHT]) * 100 / int(annotations[TOTAL]) == weight
        uids.add(canary["metadata"]["uid"])

    assert len(uids) == 1, "the canary Ingress was recreated instead of patched"
    # Rolled back: the canary Ingress stays, with the canary annotations and weight 0.
    assert annotations[WEIGHT] == "0" and annotations[TOTAL] == "1000"
    assert annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"] == "30"
    assert "kubectl.kubernetes.io/last-applied-configuration" not in annotations
    assert canary["metadata"]["labels"] == {"app": "web", "app.kubernetes.io/managed-by": "canarypilot"}
    # Same class, host, path and TLS as the stable Ingress; only the Service differs.
    expected = stable["spec"]
    expected["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] = "web-canary"
    assert canary["spec"] == expected
    # The stable Ingress is never written.
    after = fetch(cluster, f"{ingresses(namespace)}/web")
    assert after["metadata"]["resourceVersion"] == stable["metadata"]["resourceVersion"]


async def test_ingress_errors_name_what_is_missing_or_wrong(
    cluster: Cluster, client: KubeClient, namespace: str
) -> None:
    router = IngressRouter(client, namespace=namespace, stable_ingress="web", canary_service="web-canary")
    with pytest.raises(NotFound, match=f"namespaces/{namespace}/ingresses/web: not found"):
        await router.set_weight(10)
    create(cluster, ingresses(namespace), stable_ingress())
    with pytest.raises(RouterError, match="outside 0..100"):
        await router.set_weight(150)
    assert await router.get_weight() == 0.0  # nothing was created by the refused call

    foreign = stable_ingress()
    foreign["metadata"] = {"name": "web-canary", "annotations": {"team": "someone-else"}}
    create(cluster, ingresses(namespace), foreign)
    with pytest.raises(RouterError, match="web-canary exists but is not a canary Ingress"):
        await router.get_weight()


async def test_ingress_router_does_not_take_over_an_ingress_it_did_not_create(
    cluster: Cluster, client: KubeClient, namespace: str
) -> None:
    create(cluster, ingresses(namespace), stable_ingress())
    foreign = stable_ingress()
    foreign["metadata"] = {"name": "web-canary", "annotations": {"team": "someone-else"}}
    create(cluster, ingresses(namespace), foreign)
    router = IngressRouter(client, namespace=namespace, stable_ingress="web", canary_service="web-canary")
    with pytest.raises(RouterError, match="web-canary exists but is not a canary Ingress"):
        await router.set_weight(25)
    annotations = fetch(cluster, f"{ingresses(namespace)}/web-canary")["metadata"]["annotations"]
    assert CANARY not in annotations


# --- Gateway API HTTPRoute ----------------------------------------------------------------------


def route(*backends: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "web"},
        "spec": {
            "parentRefs": [{"name": "public-gw"}],
            "hostnames": ["web.example.com"],
            "rules": [
                {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}], "backendRefs": list(backends)},
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/admin"}}],
                    "backendRefs": [{"name": "web-stable", "port": 80}],
                },
            ],
        },
    }


def weights(stored: dict[str, Any], rule: int = 0) -> dict[str, int]:
    return {ref["name"]: ref.get("weight", 1) for ref in stored["spec"]["rules"][rule]["backendRefs"]}


async def test_httproute_backend_weights_follow_the_router_and_always_sum_to_1000(
    cluster: Cluster, client: KubeClient, namespace: str
) -> None:
    created = create(
        cluster,
        routes(namespace),
        route({"name": "web-stable", "port": 80}, {"name": "web-canary", "port": 80, "weight": 0}),
    )
    router = HTTPRouteRouter(
        client, namespace=namespace, route="web", stable_service="web-stable", canary_service="web-canary"
    )
    assert await router.get_weight() == 0.0
    for weight in LADDER:
        await router.set_weight(weight)
        assert await router.get_weight() == weight
        stored = fetch(cluster, f"{routes(namespace)}/web")
        assert weights(stored) == {"web-stable": 1000 - 10 * weight, "web-canary": 10 * weight}
    # Only the weights changed: matches, hostnames, parents and the other rule are as created.
    for key in ("parentRefs", "hostnames"):
        assert stored["spec"][key] == created["spec"][key]
    assert stored["spec"]["rules"][1] == created["spec"]["rules"][1]
    assert stored["spec"]["rules"][0]["matches"] == created["spec"]["rules"][0]["matches"]


async def test_httproute_router_adds_the_canary_backend_beside_the_stable_one(
    cluster: Cluster, client: KubeClient, namespace: str
) -> None:
    create(cluster, routes(namespace), route({"name": "web-stable", "port": 8080}))
    router = HTTPRouteRouter(
        client, namespace=namespace, route="web", stable_service="web-stable", canary_service="web-canary"
    )
    await router.set_weight(12.5)
    refs = fetch(cluster, f"{routes(namespace)}/web")["spec"]["rules"][0]["backendRefs"]
    canary = next(r for r in refs if r["name"] == "web-canary")
    assert canary["port"] == 8080 and canary["weight"] == 125  # the server accepted and kept it
    assert await router.get_weight() == 12.5


class RacingClient(KubeClient):
    """Someone else edits the route between the router's read and its write."""

    cluster: Cluster
    path: str

    async def replace(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.cluster.http() as http:
            answer = http.patch(
                self.path,
                json={"spec": {"hostnames": ["web.example.com", "www.example.com"]}},
                headers={"Content-Type": "application/merge-patch+json"},
            )
        assert answer.status_code == 200, answer.text
        return await super().replace(path, body)


async def test_a_concurrent_edit_is_a_retryable_conflict_and_is_never_overwritten(
    cluster: Cluster, namespace: str
) -> None:
    create(cluster, routes(namespace), route({"name": "web-stable", "port": 80}))
    racing = RacingClient.from_kubeconfig(cluster.kubeconfig)
    racing.cluster, racing.path = cluster, f"{routes(namespace)}/web"
    try:
        router = HTTPRouteRouter(
            racing, namespace=namespace, route="web", stable_service="web-stable", canary_service="web-canary"
        )
        with pytest.raises(RouterUnavailable, match="HTTP 409"):
            await router.set_weight(10)
    finally:
        await racing.aclose()
    stored = fetch(cluster, f"{routes(namespace)}/web")
    assert stored["spec"]["hostnames"] == ["web.example.com", "www.example.com"]  # their edit stands
    assert weights(stored) == {"web-stable": 1}  # ours did not land

    retry = KubeClient.from_kubeconfig(cluster.kubeconfig)
    try:
        router = HTTPRouteRouter(
            retry, namespace=namespace, route="web", stable_service="web-stable", canary_service="web-canary"
        )
        await router.set_weight(10)  # the retry the conflict asks for, on fresh data
    finally:
        await retry.aclose()
    stored = fetch(cluster, f"{routes(namespace)}/web")
    assert weights(stored) == {"web-stable": 900, "web-canary": 100}
    assert stored["spec"]["hostnames"] == ["web.example.com", "www.example.com"]


async def test_httproute_errors_are_router_errors_with_the_reason(
    cluster: Cluster, client: KubeClient, namespace: str
) -> None:
    def router(name: str) -> HTTPRouteRouter:
        return HTTPRouteRouter(
            client, namespace=namespace, route=name, stable_service="web-stable", canary_service="web-canary"
        )

    with pytest.raises(NotFound, match=f"namespaces/{namespace}/httproutes/web: not found"):
        await router("web").get_weight()
    create(cluster, routes(namespace), route({"name": "other", "port": 80}))
    with pytest.raises(RouterError, match="no backendRef to the stable Service 'web-stable'"):
        await router("web").set_weight(10)
    # The CRD allows 16 backendRefs per rule: adding the canary as a 17th is refused by the
    # API server's validation, and the router says so instead of raising a traceback.
    full = route(*({"name": "web-stable" if i == 0 else f"pad-{i}", "port": 80} for i in range(16)))
    full["metadata"]["name"] = "full"
    create(cluster, routes(namespace), full)
    with pytest.raises(RouterError, match=r"HTTP 422: .*backendRefs") as refused:
        await router("full").set_weight(10)
    assert not isinstance(refused.value, RouterUnavailable)  # invalid, not worth retrying
    assert "web-canary" not in weights(fetch(cluster, f"{routes(namespace)}/full"))


# --- Argo Rollouts ------------------------------------------------------------------------------

STEPS = [{"setWeight": 10}, {"pause": {}}, {"setWeight": 50}, {"pause": {}}]


def rollout() -> dict[str, Any]:
    labels = {"app": "web"}
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "paused": True,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "web", "image": "registry.example/web:2"}]},
            },
            "strategy": {"canary": {"steps": STEPS}},
        },
    }


async def test_argo_rollout_is_promoted_then_aborted_through_its_status(
    cluster: Cluster, client: KubeClient, namespace: str
) -> None:
    path = f"{rollouts(namespace)}/web"
    create(cluster, rollouts(namespace), rollout())
    # Argo's controller paused the rollout at step 1 after setting 10%.
    paused = {"reason": "CanaryPauseStep", "startTime": "2026-01-01T00:00:00Z"}
    patch_status(cluster, path, {"currentStepIndex": 1, "pauseConditions": [paused], "phase": "Paused"})
    router = ArgoRolloutRouter(client, namespace=namespace, rollout="web")
    assert await router.get_weight() == 10.0

    await router.set_weight(25)  # promote: past the pause, whatever weight was asked for
    stored = fetch(cluster, path)
    assert stored["spec"]["paused"] is False
    assert "pauseConditions" not in stored["status"]
    assert stored["status"]["currentStepIndex"] == 1  # the controller, not the router, moves the step
    assert stored["spec"]["strategy"]["canary"]["steps"] == STEPS

    # The controller advanced and reports the traffic-routing weight: the router reads it.
    traffic = {"canary": {"weight": 50}, "stable": {"weight": 50}}
    patch_status(cluster, path, {"currentStepIndex": 3, "canary": {"weights": traffic}})
    assert await router.get_weight() == 50.0

    await router.set_weight(100)
    assert fetch(cluster, path)["status"]["promoteFull"] is True

    generation = fetch(cluster, path)["metadata"]["generation"]
    await router.reset()  # roll back: abort
    stored = fetch(cluster, path)
    assert stored["status"]["abort"] is True
    assert stored["metadata"]["generation"] == generation  # a status write, not a spec change
    assert await router.get_weight() == 0.0


async def test_argo_router_errors_for_a_missing_rollout_and_a_bad_weight(
    client: KubeClient, namespace: str
) -> None:
    router = ArgoRolloutRouter(client, namespace=namespace, rollout="absent")
    with pytest.raises(NotFound, match=f"namespaces/{namespace}/rollouts/absent: not found"):
        await router.get_weight()
    with pytest.raises(NotFound, match="rollouts/absent/status: not found"):
        await router.reset()
    with pytest.raises(RouterError, match="outside 0..100"):
        await router.set_weight(-1)


# --- the client itself --------------------------------------------------------------------------


async def test_a_wrong_token_is_a_router_error_naming_the_refusal(cluster: Cluster) -> None:
    verify = ssl.create_default_context(cadata=cluster.ca_pem)
    wrong = KubeClient(cluster.url, token="not-the-token", verify=verify)
    try:
        with pytest.raises(RouterError, match="HTTP 401: Unauthorized") as refused:
            await wrong.get("/api/v1/namespaces/default")
        assert not isinstance(refused.value, RouterUnavailable)
    finally:
        await wrong.aclose()


def test_the_server_is_the_kube_apiserver_release_built_here(cluster: Cluster) -> None:
    version = fetch(cluster, "/version")
    assert version["gitVersion"] == KUBERNETES_VERSION
    served = fetch(cluster, "/apis/gateway.networking.k8s.io/v1")["resources"]
    assert "httproutes/status" in {r["name"] for r in served}
