"""Kubernetes nginx-ingress as the traffic router: a canary Ingress beside the stable one.

ingress-nginx splits traffic when a second Ingress for the same host and path
carries ``nginx.ingress.kubernetes.io/canary: "true"`` and a
``canary-weight``. The router clones the stable Ingress once (same class, hosts,
paths and TLS; every backend pointed at the canary Service), then changes only
the weight annotation with a merge patch. ``canary-weight-total`` is 1000, so
weights keep one decimal of a percent. Weight 0 keeps the Ingress and sends it
nothing; the stable Ingress is never modified.
"""

from __future__ import annotations

import copy
from typing import Any

from canarypilot._exceptions import RouterError, RouterUnavailable
from canarypilot.model import validate_name
from canarypilot.routing.kubernetes import KubeClient, NotFound

PREFIX = "nginx.ingress.kubernetes.io/"
CANARY = PREFIX + "canary"
WEIGHT = PREFIX + "canary-weight"
TOTAL = PREFIX + "canary-weight-total"
SCALE = 1000
MANAGED_BY = "app.kubernetes.io/managed-by"


def canary_ingress(
    stable: dict[str, Any], *, name: str, canary_service: str, weight: float
) -> dict[str, Any]:
    """The canary Ingress cloned from ``stable``: a pure function, validated in tests."""
    spec = copy.deepcopy(stable.get("spec") or {})
    for backend in _backends(spec):
        if "service" in backend:
            backend["service"]["name"] = canary_service
    meta = stable.get("metadata") or {}
    # Copy the stable ingress-nginx annotations (rewrites, timeouts…) but not canary ones.
    annotations = {
        k: v for k, v in (meta.get("annotations") or {}).items() if k.startswith(PREFIX) and k != CANARY and
        not k.startswith(PREFIX + "canary-")
    }  # fmt: skip
    annotations.update(weight_annotations(weight))
    labels = dict(meta.get("labels") or {})
    labels[MANAGED_BY] = "canarypilot"
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": name,
            "namespace": meta.get("namespace"),
            "labels": labels,
            "annotations": annotations,
        },
        "spec": spec,
    }


def weight_annotations(weight: float) -> dict[str, str]:
    if not 0 <= weight <= 100:
        raise RouterError(f"weight {weight} outside 0..100")
    return {CANARY: "true", WEIGHT: str(round(weight * SCALE / 100)), TOTAL: str(SCALE)}


def _backends(spec: dict[str, Any]) -> list[dict[str, Any]]:
    found = [spec["defaultBackend"]] if isinstance(spec.get("defaultBackend"), dict) else []
    for rule in spec.get("rules") or []:
        for path in (rule.get("http") or {}).get("paths") or []:
            if isinstance(path.get("backend"), dict):
                found.append(path["backend"])
    return found


class IngressRouter:
    """A ``Router`` over ingress-nginx canary annotations.

    >>> # router = IngressRouter(client, namespace="prod", stable_ingress="web", canary_service="web-canary")
    """

    def __init__(
        self,
        client: KubeClient,
        *,
        namespace: str,
        stable_ingress: str,
        canary_service: str,
        canary_ingress: str | None = None,
    ) -> None:
        self.client = client
        self.namespace = validate_name(namespace, what="namespace")
        self.stable_ingress = validate_name(stable_ingress, what="ingress name")
        self.canary_service = validate_name(canary_service, what="service name")
        self.canary_ingress = validate_name(canary_ingress or f"{stable_ingress}-canary", what="ingress name")

    def _path(self, name: str | None = None) -> str:
        base = f"/apis/networking.k8s.io/v1/namespaces/{self.namespace}/ingresses"
        return f"{base}/{name}" if name else base

    async def set_weight(self, weight: float) -> None:
        try:
            existing = await self.client.get(self._path(self.canary_ingress))
        except NotFound:
            stable = await self.client.get(self._path(self.stable_ingress))
            body = canary_ingress(
                stable, name=self.canary_ingress, canary_service=self.canary_service, weight=weight
            )
            body["metadata"]["namespace"] = self.namespace
            await self.client.create(self._path(), body)
        else:
            self._check_is_canary(existing)
            patch = {"metadata": {"annotations": weight_annotations(weight)}}
            await self.client.patch(self._path(self.canary_ingress), patch)
        confirmed = await self.get_weight()
        if abs(confirmed - weight) > 100 / SCALE:
            raise RouterUnavailable(f"canary Ingress reports {confirmed:g}% after setting {weight:g}%")

    async def get_weight(self) -> float:
        try:
            ingress = await self.client.get(self._path(self.canary_ingress))
        except NotFound:
            return 0.0
        self._check_is_canary(ingress)
        annotations = (ingress.get("metadata") or {}).get("annotations") or {}
        try:
            total = float(annotations.get(TOTAL, "100"))
            return round(float(annotations.get(WEIGHT, "0")) * 100 / total, 3)
        except (ValueError, ZeroDivisionError) as exc:
            raise RouterError(f"Ingress {self.canary_ingress} has a bad canary weight: {exc}") from exc

    async def reset(self) -> None:
        await self.set_weight(0.0)

    def _check_is_canary(self, ingress: dict[str, Any]) -> None:
        """Refuse an Ingress of that name that is not a canary: patching canary annotations
        onto it would turn somebody's production Ingress into a weighted canary."""
        meta = ingress.get("metadata") or {}
        if (meta.get("annotations") or {}).get(CANARY) != "true":
            raise RouterError(
                f"Ingress {self.canary_ingress} exists but is not a canary Ingress (no {CANARY}: "
                '"true"); refusing to change it: delete it or name another with canary_ingress'
            )
