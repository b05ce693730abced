"""Ingress, HTTPRoute and Argo routers against a fake API server that validates every body
with the published schemas: Kubernetes' (kubernetes-validate) and Gateway API's CRDs (v1.2.1)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from canarypilot._exceptions import RouterError, RouterUnavailable
from canarypilot.routing.argo import ArgoRolloutRouter
from canarypilot.routing.gateway import HTTPRouteRouter
from canarypilot.routing.ingress import CANARY, TOTAL, WEIGHT, IngressRouter
from canarypilot.routing.kubernetes import KubeClient
from tests.routing.kube_fake import FakeKube
from tests.support.kube_objects import stable_ingress as shared_stable_ingress

GATEWAY_API = "sigs.k8s.io/gateway-api@v1.2.1"
CACHE = Path.home() / ".cache" / "canarypilot" / "gomod"
INGRESSES = "/apis/networking.k8s.io/v1/namespaces/prod/ingresses"
ROUTE = "/apis/gateway.networking.k8s.io/v1/namespaces/prod/httproutes/web"
ROLLOUT = "/apis/argoproj.io/v1alpha1/namespaces/prod/rollouts/web"


def validate_ingress(body: dict[str, Any]) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    kubernetes_validate.validate(body, kubernetes_validate.latest_version(), strict=True)


@pytest.fixture(scope="module")
def httproute_schema() -> dict[str, Any]:
    """The HTTPRoute v1 openAPIV3Schema from the Gateway API Go module (downloaded once)."""
    if shutil.which("go") is None:
        pytest.skip("go is not installed: cannot fetch the Gateway API CRDs")
    env = {**os.environ, "GOMODCACHE": str(CACHE), "GOFLAGS": "-mod=mod"}
    result = subprocess.run(
        ["go", "mod", "download", "-json", GATEWAY_API],
        capture_output=True, text=True, env=env, cwd=CACHE.parent if CACHE.parent.exists() else None,
        timeout=300, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        pytest.skip(
            f"could not download {GATEWAY_API} from the Go module proxy: {result.stderr.strip()[-300:]}"
        )
    crd_path = (
        Path(json.loads(result.stdout)["Dir"])
        / "config/crd/standard/gateway.networking.k8s.io_httproutes.yaml"
    )
    crd = yaml.safe_load(crd_path.read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    return dict(version["schema"]["openAPIV3Schema"])


def stable_ingress() -> dict[str, Any]:
    ingress = shared_stable_ingress()
    ingress["metadata"]["namespace"] = "prod"
    return ingress


async def test_ingress_router_clones_the_stable_ingress_then_patches_the_weight() -> None:
    kube = FakeKube()
    kube.validators["/ingresses"] = validate_ingress
    kube.objects[f"{INGRESSES}/web"] = stable_ingress()
    with_client = KubeClient("https://kube.test", token="t", transport=kube.transport())
    router = IngressRouter(with_client, namespace="prod", stable_ingress="web", canary_service="web-canary")
    try:
        assert await router.get_weight() == 0.0
        await router.set_weight(12.5)
        canary = kube.objects[f"{INGRESSES}/web-canary"]
        annotations = canary["metadata"]["annotations"]
        assert annotations[CANARY] == "true" and annotations[WEIGHT] == "125" and annotations[TOTAL] == "1000"
        assert "kubectl.kubernetes.io/last-applied-configuration" not in annotations
        backend = canary["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
        assert backend == {"name": "web-canary", "port": {"number": 80}}
        assert canary["spec"]["tls"] == stable_ingress()["spec"]["tls"]
        assert kube.objects[f"{INGRESSES}/web"] == stable_ingress()  # never touched
        await router.set_weight(40)
        assert [r[0] for r in kube.requests if r[0] != "GET"] == ["POST", "PATCH"]
        assert await router.get_weight() == 40.0
        await router.reset()
        assert await router.get_weight() == 0.0
    finally:
        await with_client.aclose()


def base_route() -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "web", "namespace": "prod", "resourceVersion": "1"},
        "spec": {
            "parentRefs": [{"name": "public-gw"}],
            "hostnames": ["web.example.com"],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "backendRefs": [{"name": "web-stable", "port": 80}],
                }
            ],
        },
    }


async def test_httproute_router_sets_backend_weights_valid_per_the_crd(
    httproute_schema: dict[str, Any],
) -> None:
    kube = FakeKube()
    kube.validators["/httproutes"] = lambda body: jsonschema.validate(body, httproute_schema)
    kube.objects[ROUTE] = base_route()
    client = KubeClient("https://kube.test", token="t", transport=kube.transport())
    router = HTTPRouteRouter(
        client, namespace="prod", route="web", stable_service="web-stable", canary_service="web-canary"
    )
    try:
        assert await router.get_weight() == 0.0
        await router.set_weight(5)
        refs = kube.objects[ROUTE]["spec"]["rules"][0]["backendRefs"]
        assert refs == [
            {"name": "web-stable", "port": 80, "weight": 950},
            {"name": "web-canary", "port": 80, "weight": 50},
        ]
        await router.set_weight(100)
        assert await router.get_weight() == 100.0
        await router.reset()
        assert await router.get_weight() == 0.0
    finally:
        await client.aclose()


async def test_the_crd_schema_really_rejects_a_bad_route(httproute_schema: dict[str, Any]) -> None:
    route = base_route()
    route["spec"]["rules"][0]["backendRefs"][0]["weight"] = -1  # below the CRD's minimum
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(route, httproute_schema)


async def test_a_concurrent_edit_of_the_route_is_a_retryable_conflict() -> None:
    kube = FakeKube()
    kube.objects[ROUTE] = base_route()
    original = kube.handle

    def racing(request):  # type: ignore[no-untyped-def]
        if request.method == "PUT":
            kube.objects[ROUTE] = kube._stamp(kube.objects[ROUTE])  # someone else wrote meanwhile
        return original(request)

    kube.handle = racing  # type: ignore[method-assign]
    client = KubeClient("https://kube.test", token="t", transport=kube.transport())
    router = HTTPRouteRouter(
        client, namespace="prod", route="web", stable_service="web-stable", canary_service="web-canary"
    )
    try:
        with pytest.raises(RouterUnavailable, match="409"):
            await router.set_weight(10)
    finally:
        await client.aclose()


async def test_argo_router_promotes_and_aborts_through_status_patches() -> None:
    kube = FakeKube()
    kube.objects[ROLLOUT] = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "web", "namespace": "prod"},
        "spec": {"strategy": {"canary": {"steps": [{"setWeight": 10}, {"pause": {}}, {"setWeight": 50}]}}},
        "status": {"currentStepIndex": 1, "pauseConditions": [{"reason": "CanaryPauseStep"}]},
    }
    client = KubeClient("https://kube.test", token="t", transport=kube.transport())
    router = ArgoRolloutRouter(client, namespace="prod", rollout="web")
    try:
        assert await router.get_weight() == 10.0
        await router.set_weight(50)
        assert "pauseConditions" not in kube.objects[ROLLOUT]["status"]
        await router.reset()
        patches = [(path, body) for method, path, body, _ in kube.requests if method == "PATCH"]
        assert patches[-1] == (f"{ROLLOUT}/status", {"status": {"abort": True}})
        assert await router.get_weight() == 0.0
        await router.set_weight(100)
        assert kube.requests[-1][1:3] == (f"{ROLLOUT}/status", {"status": {"promoteFull": True}})
        assert kube.objects[ROLLOUT]["status"]["promoteFull"] is True
    finally:
        await client.aclose()


async def test_api_errors_are_split_by_what_the_caller_must_do() -> None:
    import httpx

    def answer(status: int) -> KubeClient:
        transport = httpx.MockTransport(lambda r: httpx.Response(status, json={"message": f"said {status}"}))
        return KubeClient("https://kube.test", token="t", transport=transport)

    for status, error in (
        (403, RouterError),
        (422, RouterError),
        (503, RouterUnavailable),
        (409, RouterUnavailable),
    ):
        client = answer(status)
        try:
            with pytest.raises(error, match=f"said {status}"):
                await client.patch(ROLLOUT, {"spec": {}})
        finally:
            await client.aclose()


def test_kubeconfig_token_and_ca_are_read(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "current-context": "dev",
                "contexts": [{"name": "dev", "context": {"cluster": "c", "user": "u"}}],
                "clusters": [
                    {
                        "name": "c",
                        "cluster": {"server": "https://10.0.0.1:6443", "insecure-skip-tls-verify": True},
                    }
                ],
                "users": [{"name": "u", "user": {"token": "s3cret"}}],
            }
        )
    )
    client = KubeClient.from_kubeconfig(kubeconfig)
    assert client.server == "https://10.0.0.1:6443" and client._bearer() == "s3cret"
