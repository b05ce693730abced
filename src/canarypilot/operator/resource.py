"""The CanaryRelease resource's spec, validated, and turned into what the controller runs.

The API server checks the shape (the CRD's OpenAPI schema, crd.py); this module checks
everything the schema cannot say (a router named once, names Kubernetes accepts, the
settings' cross-field rules) with the same models ``canarypilot rollout`` reads its file
with, so a policy means the same thing in both. A refusal is an ``InvalidRelease`` whose
message becomes the resource's ``Invalid`` condition.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from canarypilot._exceptions import ConfigError
from canarypilot.model import Target, validate_name
from canarypilot.policy import Settings, describe_validation_error
from canarypilot.rollout import RolloutSpec, Webhook, WebhookNotifier

#: The sections of the rollout file a release's ``policy`` may set.
POLICY_SECTIONS = ("interpolation", "slo", "breaker", "query", "rollout")


class InvalidRelease(ConfigError):
    """The resource cannot be run as written; the message says which field and why."""


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class WorkloadRef(_Spec):
    deployment: str = Field(description="The Deployment whose new pod template starts a release.")


class ServiceRef(_Spec):
    name: str = Field(description="The stable Service in front of the Deployment's pods.")
    port: int = Field(ge=1, le=65535, description="The Service port the router sends traffic to.")


class IngressRef(_Spec):
    name: str = Field(description="The stable nginx Ingress; the operator adds <name>-canary.")


class HTTPRouteRef(_Spec):
    name: str = Field(description="The HTTPRoute whose rule's backendRefs carry the weights.")
    rule: int = Field(0, ge=0, description="Index of the rule in spec.rules.")


class RouterRef(_Spec):
    ingress: IngressRef | None = None
    http_route: HTTPRouteRef | None = Field(None, alias="httpRoute")


class SecretKeyRef(_Spec):
    name: str
    key: str = "token"


class PrometheusSource(_Spec):
    url: str = Field(pattern=r"^https?://", description="Base URL of Prometheus (or Thanos, Mimir).")
    auth_secret_ref: SecretKeyRef | None = Field(
        None, alias="authSecretRef", description="A Secret key holding a bearer token."
    )


class ScrapeSource(_Spec):
    targets: dict[str, list[str]] = Field(description="host:port of /metrics per version label.")
    interval_seconds: float = Field(15.0, gt=0, alias="intervalSeconds")


class MetricsRef(_Spec):
    prometheus: PrometheusSource | None = None
    scrape: ScrapeSource | None = None


class AnalysisRef(_Spec):
    service: str | None = Field(None, description="The job label in the metrics; default: the Service.")
    canary_version: str = Field("v2-canary", alias="canaryVersion")
    stable_version: str = Field("v1-stable", alias="stableVersion")


class WebhookRef(_Spec):
    url: str = Field(pattern=r"^https?://")
    format: Literal["json", "slack"] = "json"


class NotificationsRef(_Spec):
    webhooks: list[WebhookRef] = Field(default_factory=list)


class ReleaseSpec(_Spec):
    """``spec`` of a CanaryRelease, field for field (docs/operator.md)."""

    workload: WorkloadRef
    service: ServiceRef
    router: RouterRef
    metrics: MetricsRef
    analysis: AnalysisRef = Field(default_factory=AnalysisRef)
    policy: dict[str, dict[str, Any]] = Field(default_factory=dict)
    notifications: NotificationsRef = Field(default_factory=NotificationsRef)


@dataclass(frozen=True, slots=True)
class Release:
    """One CanaryRelease, validated: where it lives, what it drives, and the rollout it runs."""

    namespace: str
    name: str
    spec: ReleaseSpec
    rollout: RolloutSpec

    @property
    def canary_deployment(self) -> str:
        return f"{self.spec.workload.deployment}-canary"

    @property
    def canary_service(self) -> str:
        return f"{self.spec.service.name}-canary"

    def with_bearer_token(self, token: str) -> Release:
        """The release with the Prometheus token read from its Secret (never logged)."""
        settings = self.rollout.settings
        prometheus = settings.prometheus.model_copy(update={"bearer_token": token})
        spec = RolloutSpec(
            self.name, self.rollout.target, settings.model_copy(update={"prometheus": prometheus})
        )
        return replace(self, rollout=spec)

    def notifier(self) -> WebhookNotifier | None:
        hooks = [Webhook(h.url, h.format) for h in self.spec.notifications.webhooks]
        return WebhookNotifier(hooks) if hooks else None


def parse_release(obj: dict[str, Any]) -> Release:
    """A CanaryRelease object from the API server, validated; ``InvalidRelease`` otherwise."""
    meta = obj.get("metadata") or {}
    namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
    try:
        validate_name(namespace, what="namespace")
        validate_name(name, what="CanaryRelease name")
        spec = ReleaseSpec.model_validate(obj.get("spec") or {})
        _check_names(spec)
        settings = Settings.model_validate({**spec.policy, **_metrics_settings(spec.metrics)})
        analysis = spec.analysis
        target = Target(
            analysis.service or spec.service.name, analysis.canary_version, analysis.stable_version
        )
        rollout = RolloutSpec(name, target, settings)
    except ValidationError as exc:
        raise InvalidRelease(f"spec: {describe_validation_error(exc)}") from None
    except ConfigError as exc:
        raise InvalidRelease(f"spec: {exc}") from None
    return Release(namespace, name, spec, rollout)


def _check_names(spec: ReleaseSpec) -> None:
    validate_name(spec.workload.deployment, what="workload.deployment")
    validate_name(spec.service.name, what="service.name")
    routers = [r for r in (spec.router.ingress, spec.router.http_route) if r is not None]
    if len(routers) != 1:
        raise InvalidRelease("spec.router: name exactly one of ingress or httpRoute")
    validate_name(routers[0].name, what="router name")
    sources = [s for s in (spec.metrics.prometheus, spec.metrics.scrape) if s is not None]
    if len(sources) != 1:
        raise InvalidRelease("spec.metrics: name exactly one of prometheus or scrape")
    unknown = sorted(set(spec.policy) - set(POLICY_SECTIONS))
    if unknown:
        raise InvalidRelease(f"spec.policy: unknown section(s) {unknown}; known: {list(POLICY_SECTIONS)}")


def _metrics_settings(metrics: MetricsRef) -> dict[str, Any]:
    if metrics.prometheus is not None:
        return {"prometheus": {"url": metrics.prometheus.url}}
    assert metrics.scrape is not None
    return {
        "scrape": {"targets": metrics.scrape.targets, "interval_seconds": metrics.scrape.interval_seconds}
    }
