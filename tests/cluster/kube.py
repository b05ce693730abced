"""Small verbs the end-to-end tests use on the API server: apply, read, patch, wait.

Plain REST over the test's own client (``Cluster.http``): the objects come from
`render argo` or tests/data, and a test asserts on what the server stores and what
the controllers write back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx

T = TypeVar("T")
ROLLOUTS = "/apis/argoproj.io/v1alpha1"
CANARY_WEIGHT = "nginx.ingress.kubernetes.io/canary-weight"


def path(api_version: str, kind: str, namespace: str | None, name: str | None = None) -> str:
    plural = "ingresses" if kind == "Ingress" else f"{kind.lower()}s"
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    where = f"{base}/namespaces/{namespace}/{plural}" if namespace else f"{base}/{plural}"
    return f"{where}/{name}" if name else where


def create(http: httpx.Client, doc: dict[str, Any]) -> httpx.Response:
    meta = doc["metadata"]
    return http.post(path(doc["apiVersion"], doc["kind"], meta.get("namespace")), json=doc)


def apply_all(http: httpx.Client, docs: list[dict[str, Any]]) -> None:
    """Create every object; any refusal fails with the server's message."""
    for doc in docs:
        answer = create(http, doc)
        if answer.status_code != 201:
            raise AssertionError(
                f"{doc['kind']} {doc['metadata']['name']}: {answer.status_code} {answer.text[:600]}"
            )


def get(http: httpx.Client, url: str) -> dict[str, Any]:
    answer = http.get(url)
    answer.raise_for_status()
    body: dict[str, Any] = answer.json()
    return body


def rollout(http: httpx.Client, namespace: str, name: str) -> dict[str, Any]:
    return get(http, f"{ROLLOUTS}/namespaces/{namespace}/rollouts/{name}")


def set_image(http: httpx.Client, namespace: str, name: str, image: str) -> None:
    """A new pod template: for Argo, a new revision whose canary climbs the steps."""
    current = rollout(http, namespace, name)
    containers = current["spec"]["template"]["spec"]["containers"]
    containers[0]["image"] = image
    patch = {"spec": {"template": {"spec": {"containers": containers}}}}
    answer = http.patch(
        f"{ROLLOUTS}/namespaces/{namespace}/rollouts/{name}",
        json=patch,
        headers={"Content-Type": "application/merge-patch+json"},
    )
    answer.raise_for_status()


def canary_weight(http: httpx.Client, namespace: str) -> int | None:
    """The weight on the canary Ingress Argo manages (None while there is none)."""
    for item in get(http, f"/apis/networking.k8s.io/v1/namespaces/{namespace}/ingresses")["items"]:
        annotations = item["metadata"].get("annotations") or {}
        if annotations.get("nginx.ingress.kubernetes.io/canary") == "true" and CANARY_WEIGHT in annotations:
            return int(annotations[CANARY_WEIGHT])
    return None


def analysis_runs(http: httpx.Client, namespace: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = get(http, f"{ROLLOUTS}/namespaces/{namespace}/analysisruns")["items"]
    return sorted(items, key=lambda run: run["metadata"]["creationTimestamp"])


def wait_for(what: str, probe: Callable[[], T | None], *, timeout: float, every: float = 0.25) -> T:
    """Poll ``probe`` until it returns something other than None."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found is not None:
            return found
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not reached after {timeout:g}s")
        time.sleep(every)
