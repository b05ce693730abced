"""The workload side of a release: the primary Deployment held, the canary brought up, the
cluster left clean at the end.

How a new template becomes a release: the operator *pauses* the target Deployment when
it adopts it (``spec.paused``), so a new pod template is stored but not rolled out; the
template the Deployment runs is recorded as ``stableTemplateHash``. A different template
hash starts a release: a ``<deployment>-canary`` Deployment runs the new template, its
pods relabelled (every selector label of the Deployment and the Service gets
``-canary`` appended, plus ``canarypilot.io/role: canary``) so neither the stable
ReplicaSets nor the stable Service pick them up, and a ``<service>-canary`` Service
selects them for the router.

Promotion unpauses the primary (the Deployment controller rolls it to the new template),
waits until it is fully updated, then sends all traffic back to it (route weight 0) and
scales the canary to 0. Rollback scales the canary to 0 and never touches the primary.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import json
from collections.abc import Callable
from typing import Any

from canarypilot._exceptions import RouterUnavailable
from canarypilot.operator.resource import Release
from canarypilot.routing.kubernetes import KubeClient, NotFound

ROLE = "canarypilot.io/role"
RELEASE = "canarypilot.io/release"
TEMPLATE = "canarypilot.io/template-hash"
MANAGED_BY = {"app.kubernetes.io/managed-by": "canarypilot"}


def template_hash(deployment: dict[str, Any]) -> str:
    """A short, stable digest of a Deployment's pod template."""
    template = (deployment.get("spec") or {}).get("template") or {}
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:16]


def canary_labels(labels: dict[str, str], selector_keys: set[str]) -> dict[str, str]:
    relabelled = {k: f"{v}-canary" if k in selector_keys else v for k, v in labels.items()}
    return {**relabelled, ROLE: "canary"}


class Workload:
    """The Deployments and Services of one release; ``fence`` guards every write."""

    def __init__(self, client: KubeClient, release: Release, *, fence: Callable[[], None]) -> None:
        self.client = client
        self.release = release
        self.fence = fence
        ns = release.namespace
        self._deployments = f"/apis/apps/v1/namespaces/{ns}/deployments"
        self._services = f"/api/v1/namespaces/{ns}/services"

    @property
    def primary_path(self) -> str:
        return f"{self._deployments}/{self.release.spec.workload.deployment}"

    @property
    def canary_path(self) -> str:
        return f"{self._deployments}/{self.release.canary_deployment}"

    async def primary(self) -> dict[str, Any]:
        return await self.client.get(self.primary_path)

    async def hold_primary(self) -> None:
        """Pause the primary: a new template is then stored, not rolled out."""
        self.fence()
        await self.client.patch(self.primary_path, {"spec": {"paused": True}})

    async def _selector_keys(self, primary: dict[str, Any]) -> set[str]:
        service = await self.client.get(f"{self._services}/{self.release.spec.service.name}")
        keys = set(((service.get("spec") or {}).get("selector") or {}).keys())
        match = (((primary.get("spec") or {}).get("selector") or {}).get("matchLabels")) or {}
        return keys | set(match)

    async def bring_up_canary(self, primary: dict[str, Any]) -> None:
        """Create (or update to this template) the canary Deployment and its Service."""
        keys = await self._selector_keys(primary)
        spec = primary.get("spec") or {}
        template = copy.deepcopy(spec.get("template") or {})
        meta = template.setdefault("metadata", {})
        labels = canary_labels(dict(meta.get("labels") or {}), keys)
        meta["labels"] = {**labels, TEMPLATE: template_hash(primary)}
        selector = {k: v for k, v in labels.items() if k in keys or k == ROLE}
        replicas = int(spec.get("replicas", 1))
        body: dict[str, Any] = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": self.release.canary_deployment,
                "namespace": self.release.namespace,
                "labels": {**MANAGED_BY, RELEASE: self.release.name},
            },
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": selector},
                "template": template,
            },
        }
        self.fence()
        try:
            await self.client.get(self.canary_path)
        except NotFound:
            await self.client.create(self._deployments, body)
        else:
            await self.client.patch(self.canary_path, {"spec": {"replicas": replicas, "template": template}})
        await self._canary_service(selector)

    async def _canary_service(self, selector: dict[str, str]) -> None:
        stable = await self.client.get(f"{self._services}/{self.release.spec.service.name}")
        ports = [
            {k: v for k, v in port.items() if k in ("name", "port", "targetPort", "protocol")}
            for port in (stable.get("spec") or {}).get("ports") or []
        ]
        body = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": self.release.canary_service,
                "namespace": self.release.namespace,
                "labels": {**MANAGED_BY, RELEASE: self.release.name},
            },
            "spec": {"selector": selector, "ports": ports},
        }
        self.fence()
        try:
            await self.client.get(f"{self._services}/{self.release.canary_service}")
        except NotFound:
            await self.client.create(self._services, body)

    async def scale_canary_to_zero(self) -> None:
        self.fence()
        with contextlib.suppress(NotFound):
            await self.client.patch(self.canary_path, {"spec": {"replicas": 0}})

    async def roll_primary(self, *, timeout_seconds: float = 600.0, poll_seconds: float = 0.5) -> None:
        """Unpause the primary and wait until every replica runs the new template."""
        self.fence()
        await self.client.patch(self.primary_path, {"spec": {"paused": False}})
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_seconds
        while not rolled_out(await self.primary()):
            if loop.time() >= deadline:
                raise RouterUnavailable(
                    f"Deployment {self.release.spec.workload.deployment} not rolled out "
                    f"after {timeout_seconds:g}s"
                )
            await asyncio.sleep(poll_seconds)
        # Held again, so that the next template is a release, not a rolling update.
        await self.hold_primary()


def rolled_out(deployment: dict[str, Any]) -> bool:
    """The Deployment controller has seen the latest spec and every replica is updated."""
    meta: dict[str, Any] = deployment.get("metadata") or {}
    spec: dict[str, Any] = deployment.get("spec") or {}
    status: dict[str, Any] = deployment.get("status") or {}
    wanted = int(spec.get("replicas", 1))
    return (
        int(status.get("observedGeneration", 0)) >= int(meta.get("generation", 0))
        and int(status.get("updatedReplicas", 0)) == wanted
        and int(status.get("replicas", 0)) == wanted
        and int(status.get("availableReplicas", 0)) == wanted
    )
