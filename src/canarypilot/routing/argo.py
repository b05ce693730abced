"""Argo Rollouts owns the routing: canarypilot gates its steps (promote) or aborts it.

Argo takes its weights from the Rollout's own ``setWeight`` steps; nobody can
hand it an arbitrary weight. So this router maps the controller's intent onto
the two status patches Argo honours (the same ones its kubectl plugin sends):

* weight 0 — abort: ``{"status": {"abort": true}}``; Argo sends all traffic to stable;
* weight 100 — full promotion: ``{"status": {"promoteFull": true}}``;
* anything in between — promote past the current pause: ``{"status":
  {"pauseConditions": null}}`` (and ``spec.paused: false``).

``get_weight`` reads Argo's actual canary weight, and ``weights_are_steps``
tells the controller to accept it as the new weight instead of expecting the
one it asked for.
"""

from __future__ import annotations

from typing import Any

from canarypilot._exceptions import RouterError
from canarypilot.model import validate_name
from canarypilot.routing.kubernetes import KubeClient

ABORT = {"status": {"abort": True}}
PROMOTE_FULL = {"status": {"promoteFull": True}}
UNPAUSE_STATUS = {"status": {"pauseConditions": None}}
UNPAUSE_SPEC = {"spec": {"paused": False}}


def current_weight(rollout: dict[str, Any]) -> float:
    """Argo's canary weight: the traffic-routing status when present, else the step ladder."""
    status = rollout.get("status") or {}
    if status.get("abort"):
        return 0.0
    weights = (status.get("canary") or {}).get("weights") or {}
    if "canary" in weights and "weight" in weights["canary"]:
        return float(weights["canary"]["weight"])
    if status.get("phase") == "Healthy" and status.get("stableRS") == status.get("currentPodHash"):
        return 100.0 if status.get("currentStepIndex") is not None else 0.0
    steps = (((rollout.get("spec") or {}).get("strategy") or {}).get("canary") or {}).get("steps") or []
    index = int(status.get("currentStepIndex") or 0)
    weight = 0.0
    for step in steps[: index + 1]:
        if isinstance(step, dict) and "setWeight" in step:
            weight = float(step["setWeight"])
    return weight


class ArgoRolloutRouter:
    """A ``Router`` that promotes or aborts an Argo Rollout (argoproj.io/v1alpha1)."""

    #: Argo chooses the weights; the controller accepts the weight Argo reports.
    weights_are_steps = True

    def __init__(self, client: KubeClient, *, namespace: str, rollout: str) -> None:
        self.client = client
        self.namespace = validate_name(namespace, what="namespace")
        self.rollout = validate_name(rollout, what="rollout name")

    @property
    def path(self) -> str:
        return f"/apis/argoproj.io/v1alpha1/namespaces/{self.namespace}/rollouts/{self.rollout}"

    async def set_weight(self, weight: float) -> None:
        if not 0 <= weight <= 100:
            raise RouterError(f"weight {weight} outside 0..100")
        if weight == 0:
            await self.client.patch(self.path + "/status", ABORT)
        elif weight >= 100:
            await self.client.patch(self.path + "/status", PROMOTE_FULL)
        else:
            await self.client.patch(self.path, UNPAUSE_SPEC)
            await self.client.patch(self.path + "/status", UNPAUSE_STATUS)

    async def get_weight(self) -> float:
        return current_weight(await self.client.get(self.path))

    async def reset(self) -> None:
        await self.set_weight(0.0)
