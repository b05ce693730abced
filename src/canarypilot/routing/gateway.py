"""Gateway API as the traffic router: the weights of an HTTPRoute rule's backendRefs.

The route's rule holds a backendRef to the stable Service; the router adds
the canary Service beside it (same port) on the first change and from then
on sets both weights, which add up to 1000. Each change reads the route,
edits the weights and writes it back with its ``resourceVersion``: a
concurrent edit by someone else is a conflict (retried), never overwritten.
"""

from __future__ import annotations

import copy
from typing import Any

from canarypilot._exceptions import RouterError, RouterUnavailable
from canarypilot.model import validate_name
from canarypilot.routing.kubernetes import KubeClient

SCALE = 1000


def weighted_route(
    route: dict[str, Any], *, rule: int, stable: str, canary: str, weight: float
) -> dict[str, Any]:
    """``route`` with the rule's stable/canary backendRef weights set: a pure function."""
    if not 0 <= weight <= 100:
        raise RouterError(f"weight {weight} outside 0..100")
    body = copy.deepcopy(route)
    body.pop("status", None)  # status belongs to the controllers; PUT of the main resource ignores it
    refs = _rule(body, rule).setdefault("backendRefs", [])
    stable_ref = next((r for r in refs if r.get("name") == stable), None)
    if stable_ref is None:
        raise RouterError(f"HTTPRoute rule {rule} has no backendRef to the stable Service {stable!r}")
    canary_ref = next((r for r in refs if r.get("name") == canary), None)
    if canary_ref is None:
        canary_ref = {k: v for k, v in stable_ref.items() if k in ("group", "kind", "namespace", "port")}
        canary_ref["name"] = canary
        refs.append(canary_ref)
    canary_ref["weight"] = round(weight * SCALE / 100)
    stable_ref["weight"] = SCALE - canary_ref["weight"]
    return body


def route_weight(route: dict[str, Any], *, rule: int, stable: str, canary: str) -> float:
    refs = _rule(route, rule).get("backendRefs") or []
    weights = {r.get("name"): int(r.get("weight", 1)) for r in refs}
    total = weights.get(stable, 0) + weights.get(canary, 0)
    if total == 0:
        raise RouterError("both backendRefs have weight 0: the route serves nothing")
    return round(weights.get(canary, 0) * 100 / total, 3)


def _rule(route: dict[str, Any], index: int) -> dict[str, Any]:
    rules = (route.get("spec") or {}).get("rules") or []
    if index >= len(rules):
        raise RouterError(f"HTTPRoute has {len(rules)} rule(s); rule {index} does not exist")
    rule: dict[str, Any] = rules[index]
    return rule


class HTTPRouteRouter:
    """A ``Router`` over a Gateway API HTTPRoute (gateway.networking.k8s.io/v1)."""

    def __init__(
        self,
        client: KubeClient,
        *,
        namespace: str,
        route: str,
        stable_service: str,
        canary_service: str,
        rule: int = 0,
    ) -> None:
        self.client = client
        self.namespace = validate_name(namespace, what="namespace")
        self.route = validate_name(route, what="HTTPRoute name")
        self.stable = validate_name(stable_service, what="service name")
        self.canary = validate_name(canary_service, what="service name")
        self.rule = rule

    @property
    def path(self) -> str:
        return f"/apis/gateway.networking.k8s.io/v1/namespaces/{self.namespace}/httproutes/{self.route}"

    async def set_weight(self, weight: float) -> None:
        current = await self.client.get(self.path)
        body = weighted_route(current, rule=self.rule, stable=self.stable, canary=self.canary, weight=weight)
        written = await self.client.replace(self.path, body)
        confirmed = route_weight(written, rule=self.rule, stable=self.stable, canary=self.canary)
        if abs(confirmed - weight) > 100 / SCALE:
            raise RouterUnavailable(f"HTTPRoute reports {confirmed:g}% after setting {weight:g}%")

    async def get_weight(self) -> float:
        route = await self.client.get(self.path)
        return route_weight(route, rule=self.rule, stable=self.stable, canary=self.canary)

    async def reset(self) -> None:
        await self.set_weight(0.0)
