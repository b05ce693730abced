"""Argo Rollouts manifests in which the safe weight paces the rollout.

Argo's ``setWeight`` is a fixed integer: it cannot take a weight from an analysis
result (the article's ``${analysis.result.weight}`` does not exist). So the Rollout
climbs a ladder of fixed weights, and before each rung an AnalysisRun asks the
analysis service whether the canary may take it (``/analyze?target_weight=N``):

* ``slo-guard`` measures every ``interval`` after the warm-up and fails the run on the
  first ``rollback`` answer (``failureLimit: 0``: the sequential test has already done the
  counting): the rollout aborts;
* ``safe-weight`` measures at every interval of the same window: ``gate`` is ``pass``
  (the ladder lets the canary take the rung: Successful), ``fail`` (abort at once) or
  ``wait`` (no verdict yet, or a safe weight below the rung: Inconclusive). Up to
  ``count - 1`` waits are allowed, so one pass during the window takes the rung when the
  window ends; a window of waits only is Inconclusive, and Argo pauses the rollout for a
  person — missing data neither passes nor aborts at once. (Argo cannot end a metric
  early on success: every rung lasts the whole window.)
* a metrics outage is a non-2xx answer, an Error that Argo retries every 10 s; after
  ``breaker.metrics_outage_seconds`` of errors in a row the run errors and the
  rollout aborts (fail toward stable).

The first rung is not gated: a canary without traffic has no data to judge. See
docs/argo.md for the reasoning and for what the article's own template does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from canarypilot._exceptions import ConfigError
from canarypilot._version import IMAGE
from canarypilot.model import validate_name
from canarypilot.policy import Settings

GATE_TEMPLATE = "canarypilot-gate"
ANALYZER = "canarypilot-analyzer"
DEFAULT_STEPS = (5, 10, 20, 35, 50, 75, 100)
#: Argo retries a measurement that errored after this long (analysis.DefaultErrorRetryInterval).
ARGO_ERROR_RETRY_SECONDS = 10
TOKEN_PATH = "/var/run/canarypilot/token"
#: Each rung's observation window after its warm-up. The engine needs ``min_slices`` slices
#: (3 of 30 s at the defaults), the scrape lag and the slice grid's alignment before its first
#: verdict, and longer for its bounds to narrow enough for the next rung: 60 s answered
#: "wait" on every rung of the simulated suite (tuning seeds 1000-1004); with 240 s, 36 of
#: 70 healthy runs there promoted and 43 of 90 bad ones aborted (docs/argo.md).
DEFAULT_OBSERVE_SECONDS = 240


@dataclass(frozen=True, slots=True)
class ArgoOptions:
    """What `canarypilot render argo` writes; see its --help for each field."""

    service: str
    image: str
    namespace: str = "default"
    analyzer_namespace: str = "canarypilot"
    analyzer_url: str | None = None
    analyzer_image: str = IMAGE
    prometheus_url: str = "http://prometheus.monitoring:9090"
    replicas: int = 4
    container_port: int = 8080
    ingress_host: str | None = None
    ingress_class: str = "nginx"
    steps: tuple[int, ...] = DEFAULT_STEPS
    observe_seconds: int = DEFAULT_OBSERVE_SECONDS
    interval_seconds: int = 15
    token_secret: str | None = None
    #: Seconds before each rung's first measurement; None: the breaker's warm-up.
    warmup_seconds: int | None = None
    #: The gate as a ClusterAnalysisTemplate (one for every namespace), named with clusterScope.
    cluster_gate: bool = False

    def __post_init__(self) -> None:
        for value, what in (
            (self.service, "service name"),
            (self.namespace, "namespace"),
            (self.analyzer_namespace, "analyzer namespace"),
        ):
            dns_label(value, what)
        if len(self.service) > 56:
            raise ConfigError(
                "the service name must be at most 56 characters (Services get a -canary suffix)"
            )
        if self.token_secret is not None:
            dns_label(self.token_secret, "token secret name")
        for image in (self.image, self.analyzer_image):
            if not image or any(ch.isspace() for ch in image):
                raise ConfigError(f"invalid image {image!r}")
        _check_steps(self.steps)
        if self.observe_seconds < self.interval_seconds or self.interval_seconds < 1:
            raise ConfigError("--observe must be at least --interval, and --interval at least 1s")
        if self.warmup_seconds is not None and not 0 <= self.warmup_seconds <= 3600:
            raise ConfigError("--warmup must be 0-3600 seconds")
        if not 1 <= self.replicas <= 1000 or not 1 <= self.container_port <= 65535:
            raise ConfigError("--replicas must be 1-1000 and --container-port 1-65535")
        for url, what in ((self.analyzer_url, "analyzer URL"), (self.prometheus_url, "Prometheus URL")):
            if url is not None:
                _check_url(url, what)

    @property
    def url(self) -> str:
        """The /analyze URL Argo calls."""
        base = self.analyzer_url or f"http://{ANALYZER}.{self.analyzer_namespace}.svc:8080"
        return base.rstrip("/").removesuffix("/analyze") + "/analyze"


def render_argo(options: ArgoOptions, settings: Settings | None = None) -> list[dict[str, Any]]:
    """Every object, in the order to apply them."""
    settings = settings or Settings()
    return [
        *analyzer_objects(options, settings),
        gate_template(options, settings),
        *service_objects(options),
        rollout(options, settings),
    ]


def gate_template(options: ArgoOptions, settings: Settings) -> dict[str, Any]:
    """The AnalysisTemplate each rung runs."""
    breaker = settings.breaker
    warmup = options.warmup_seconds
    if warmup is None:
        warmup = int(math.ceil(breaker.warmup_seconds))
    errors = max(1, math.ceil(breaker.metrics_outage_seconds / ARGO_ERROR_RETRY_SECONDS))
    query = (
        "service={{args.service}}&canary_version={{args.canary-version}}"
        "&stable_version={{args.stable-version}}&weight={{args.weight}}&target_weight={{args.target-weight}}"
    )
    # The analyzer answers within its Prometheus deadline; Argo waits that and a margin.
    timeout = math.ceil(settings.prometheus.deadline_seconds) + 2
    web: dict[str, Any] = {"url": f"{options.url}?{query}", "timeoutSeconds": timeout}
    args: list[dict[str, Any]] = [
        {"name": "service"},
        # The rung the canary is on while the gate runs: the analyzer reads the step's start
        # from the canary's share of requests at that weight (stateless across replicas).
        {"name": "weight"},
        {"name": "target-weight"},
        {"name": "canary-version", "value": settings.query.canary_version},
        {"name": "stable-version", "value": settings.query.stable_version},
    ]
    if options.token_secret:
        args.append(
            {"name": "token", "valueFrom": {"secretKeyRef": {"name": options.token_secret, "key": "token"}}}
        )
        web["headers"] = [{"key": "Authorization", "value": "Bearer {{args.token}}"}]
    guard_count = options.observe_seconds // options.interval_seconds + 1
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "ClusterAnalysisTemplate" if options.cluster_gate else "AnalysisTemplate",
        "metadata": _gate_metadata(options),
        "spec": {
            "args": args,
            "metrics": [
                {
                    "name": "slo-guard",
                    "initialDelay": f"{warmup}s",
                    "interval": f"{options.interval_seconds}s",
                    "count": guard_count,
                    # decide's test is anytime-valid: one rollback verdict is the controller's.
                    "failureLimit": 0,
                    "consecutiveErrorLimit": errors,
                    "failureCondition": 'result == "rollback"',
                    "provider": {"web": {**web, "jsonPath": "{$.status}"}},
                },
                {
                    # Asked at every interval of the window: one "pass" (and no "fail") lets the
                    # rung be taken when the window ends; "wait" at every measurement pauses.
                    "name": "safe-weight",
                    "initialDelay": f"{warmup}s",
                    "interval": f"{options.interval_seconds}s",
                    "count": guard_count,
                    "failureLimit": 0,
                    "inconclusiveLimit": guard_count - 1,
                    "consecutiveErrorLimit": errors,
                    "successCondition": 'result == "pass"',
                    "failureCondition": 'result == "fail"',
                    "provider": {"web": {**web, "jsonPath": "{$.gate}"}},
                },
            ],
        },
    }


def rollout(options: ArgoOptions, settings: Settings) -> dict[str, Any]:
    """The Rollout: nginx traffic routing through the stable Ingress, a gated ladder."""
    name = options.service
    query = settings.query
    steps: list[dict[str, Any]] = [{"setWeight": options.steps[0]}]
    current = options.steps[0]
    for weight in [*options.steps[1:], *([] if options.steps[-1] == 100 else [100])]:
        steps.append(
            {
                "analysis": {
                    "templates": [
                        {
                            "templateName": GATE_TEMPLATE,
                            **({"clusterScope": True} if options.cluster_gate else {}),
                        }
                    ],
                    "args": [
                        {"name": "service", "value": name},
                        {"name": "weight", "value": str(current)},
                        {"name": "target-weight", "value": str(weight)},
                    ],
                }
            }
        )
        current = weight
        if weight < 100:  # after the last step Argo promotes: 100% without a setWeight
            steps.append({"setWeight": weight})
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name, "namespace": options.namespace, "labels": {"app": name}},
        "spec": {
            "replicas": options.replicas,
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {
                            "name": name,
                            "image": options.image,
                            "ports": [{"name": "http", "containerPort": options.container_port}],
                        }
                    ]
                },
            },
            "strategy": {
                "canary": {
                    "canaryService": f"{name}-canary",
                    "stableService": f"{name}-stable",
                    # The pods' version label is what the analysis compares (scrape it as `version`).
                    "canaryMetadata": {"labels": {query.version_label: query.canary_version}},
                    "stableMetadata": {"labels": {query.version_label: query.stable_version}},
                    "trafficRouting": {"nginx": {"stableIngress": name}},
                    "steps": steps,
                }
            },
        },
    }


def service_objects(options: ArgoOptions) -> list[dict[str, Any]]:
    """The stable and canary Services and the stable Ingress the Rollout routes through."""
    name = options.service
    services = [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": f"{name}-{role}", "namespace": options.namespace, "labels": {"app": name}},
            "spec": {
                "selector": {"app": name},
                "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
            },
        }
        for role in ("stable", "canary")
    ]
    rule: dict[str, Any] = {
        "http": {
            "paths": [
                {
                    "path": "/",
                    "pathType": "Prefix",
                    "backend": {"service": {"name": f"{name}-stable", "port": {"name": "http"}}},
                }
            ]
        }
    }
    if options.ingress_host:
        rule["host"] = options.ingress_host
    ingress = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name, "namespace": options.namespace, "labels": {"app": name}},
        "spec": {"ingressClassName": options.ingress_class, "rules": [rule]},
    }
    return [*services, ingress]


def analyzer_objects(options: ArgoOptions, settings: Settings) -> list[dict[str, Any]]:
    """The analysis service's own ServiceAccount, Deployment and Service."""
    ns = options.analyzer_namespace
    meta = {"name": ANALYZER, "namespace": ns, "labels": _labels(ANALYZER)}
    args = ["serve", "--host", "0.0.0.0", "--port", "8080", "--prometheus", options.prometheus_url]
    container: dict[str, Any] = {
        "name": "analyzer",
        "image": options.analyzer_image,
        "args": args,
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 5},
        "livenessProbe": {"httpGet": {"path": "/livez", "port": "http"}, "periodSeconds": 10},
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    pod: dict[str, Any] = {
        "serviceAccountName": ANALYZER,
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": int(settings.service.drain_seconds) + 10,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
    }
    if options.token_secret:
        args += ["--token-file", TOKEN_PATH]
        container["volumeMounts"] = [
            {"name": "token", "mountPath": TOKEN_PATH.rsplit("/", 1)[0], "readOnly": True}
        ]
        pod["volumes"] = [{"name": "token", "secret": {"secretName": options.token_secret}}]
    selector = {"app.kubernetes.io/name": ANALYZER}
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": meta,
            "automountServiceAccountToken": False,
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta,
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": selector},
                "template": {"metadata": {"labels": selector}, "spec": pod},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta,
            "spec": {
                "selector": selector,
                "ports": [{"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}],
            },
        },
        {
            # A node drain must not take both analyzers at once: every gate would then
            # record an Error and pause the rollouts it guards.
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": meta,
            "spec": {"minAvailable": 1, "selector": {"matchLabels": selector}},
        },
    ]


def to_yaml(documents: Sequence[dict[str, Any]]) -> str:
    """A multi-document YAML stream."""
    import yaml

    class _Plain(yaml.SafeDumper):
        # Objects share dicts (labels, metadata): write them out, not as YAML anchors.
        def ignore_aliases(self, data: Any) -> bool:
            return True

    return "---\n".join(yaml.dump(doc, Dumper=_Plain, sort_keys=False) for doc in documents)


def _gate_metadata(options: ArgoOptions) -> dict[str, Any]:
    namespace = {} if options.cluster_gate else {"namespace": options.namespace}
    return {"name": GATE_TEMPLATE, **namespace, "labels": _labels(GATE_TEMPLATE)}


def _labels(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "canarypilot"}


def _check_steps(steps: Sequence[int]) -> None:
    if not steps:
        raise ConfigError("--steps needs at least one weight")
    if any(not isinstance(s, int) or not 1 <= s <= 100 for s in steps):
        raise ConfigError("--steps are whole percentages from 1 to 100 (Argo's setWeight is an integer)")
    if any(b <= a for a, b in zip(steps, steps[1:], strict=False)):
        raise ConfigError("--steps must increase, e.g. 5,10,20,35,50,75,100")


def _check_url(url: str, what: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{what} {url!r} must be an http:// or https:// URL")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ConfigError(f"{what} {url!r} must carry no credentials, query or fragment")


def dns_label(value: str, what: str) -> None:
    validate_name(value, what=what)
    import re

    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", value):
        raise ConfigError(f"invalid {what} {value!r}: Kubernetes wants lower-case letters, digits and '-'")
