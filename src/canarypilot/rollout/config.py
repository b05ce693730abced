"""The rollout file: one YAML document naming the rollout, its router, metrics and settings.

::

    name: payment-api
    target: {service: payment-api, canary_version: v2-canary, stable_version: v1-stable}
    router: {type: haproxy, runtime_api: /run/haproxy/admin.sock, backend: app}
    metrics: {type: prometheus, url: http://prometheus:9090}
    notifications: {webhooks: [{url: https://hooks.slack.com/services/…, format: slack}]}
    rollout: {pauses_seconds: [60, 90, 120, 180], max_growth_factor: 2}
    slo: {max_latency_delta: 0.15}

The usual settings sections (``interpolation``, ``slo``, ``breaker``, ``query``,
``rollout``, ``prometheus``, ``scrape``) sit at the top level. Without a
``metrics:`` block the metrics come from ``prometheus.url`` when it is set, else
from ``scrape.targets`` (the embedded scraper), else the file is refused.
Unknown keys are errors that name the key.
Routers and metrics providers are built from the ``type`` field through two
small registries; a new kind is one entry there (see docs/rollout.md).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from canarypilot._exceptions import ConfigError
from canarypilot.metrics.base import MetricsProvider
from canarypilot.model import Target
from canarypilot.policy import PrometheusSettings, Settings, describe_validation_error
from canarypilot.policy.documents import load_yaml
from canarypilot.rollout.events import RolloutSpec
from canarypilot.rollout.notify import Webhook, WebhookNotifier
from canarypilot.routing.base import Router

MAX_FILE_BYTES = 256 * 1024


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class TargetConfig(_Strict):
    service: str
    canary_version: str = "v2-canary"
    stable_version: str = "v1-stable"


class HAProxyConfig(_Strict):
    type: Literal["haproxy"]
    runtime_api: str = Field(description="Unix socket path or tcp://host:port of the runtime API.")
    backend: str
    stable_server: str = "stable"
    canary_server: str = "canary"
    timeout_seconds: float = Field(2.0, gt=0)


class NginxConfig(_Strict):
    type: Literal["nginx"]
    include: str = Field(description="The upstream include file canarypilot owns.")
    upstream: str
    stable: str = Field(description="host:port of the stable version.")
    canary: str = Field(description="host:port of the canary version.")
    config: str = Field("/etc/nginx/nginx.conf", description="Main config, for nginx -t and reload.")
    nginx: str = "nginx"
    pid_file: str | None = None
    confirm_url: str | None = None
    timeout_seconds: float = Field(5.0, gt=0)


class KubernetesConfig(_Strict):
    """How to reach the API server: in-cluster service account, or a kubeconfig."""

    kubeconfig: str | None = Field(None, description="Path; None: in-cluster, then ~/.kube/config.")
    context: str | None = None
    timeout_seconds: float = Field(5.0, gt=0)


class IngressConfig(_Strict):
    type: Literal["ingress"]
    namespace: str
    stable_ingress: str
    canary_service: str = Field(description="Service of the canary pods; the clone points at it.")
    canary_ingress: str | None = Field(None, description="Default: <stable_ingress>-canary.")
    kubernetes: KubernetesConfig = Field(default_factory=KubernetesConfig)


class GatewayConfig(_Strict):
    type: Literal["gateway"]
    namespace: str
    route: str = Field(description="The HTTPRoute whose backendRefs carry the weights.")
    stable_service: str
    canary_service: str
    rule: int = Field(0, ge=0, description="Index of the rule in spec.rules.")
    kubernetes: KubernetesConfig = Field(default_factory=KubernetesConfig)


class ArgoConfig(_Strict):
    type: Literal["argo"]
    namespace: str
    rollout: str = Field(description="The Argo Rollout; Argo owns the routing and the steps.")
    kubernetes: KubernetesConfig = Field(default_factory=KubernetesConfig)


RouterConfig = Annotated[
    HAProxyConfig | NginxConfig | IngressConfig | GatewayConfig | ArgoConfig, Field(discriminator="type")
]


class PrometheusMetricsConfig(PrometheusSettings):
    type: Literal["prometheus"]


class ScrapeMetricsConfig(_Strict):
    type: Literal["scrape"]
    targets: dict[str, list[str]] = Field(description="host:port (or URL) of /metrics per version label.")
    interval_seconds: float = Field(15.0, gt=0)


MetricsConfig = Annotated[PrometheusMetricsConfig | ScrapeMetricsConfig, Field(discriminator="type")]


class WebhookConfig(_Strict):
    url: str = Field(pattern=r"^https?://", description="Where to POST; kept out of logs past the host.")
    format: Literal["json", "slack"] = Field("json", description="json: the event object; slack: {text}.")


class NotificationsConfig(_Strict):
    webhooks: list[WebhookConfig] = Field(default_factory=list)
    timeout_seconds: float = Field(2.0, gt=0, description="Per webhook call; never delays a rollback.")


class RolloutFile(Settings):
    """The whole file: every settings section, plus what one rollout needs. Docs: docs/rollout.md."""

    name: str
    target: TargetConfig
    router: RouterConfig
    metrics: MetricsConfig | None = None
    notifications: NotificationsConfig = Field(default_factory=NotificationsConfig)

    def metrics_source(self) -> PrometheusMetricsConfig | ScrapeMetricsConfig:
        """``metrics:`` when given, else ``prometheus.url``, else ``scrape.targets``."""
        if self.metrics is not None:
            return self.metrics
        if self.prometheus.url:
            return PrometheusMetricsConfig(type="prometheus", **self.prometheus.model_dump())
        if self.scrape.targets:
            return ScrapeMetricsConfig(
                type="scrape", targets=self.scrape.targets, interval_seconds=self.scrape.interval_seconds
            )
        raise ConfigError(
            "no metrics source: add a metrics: block, or set prometheus.url, or scrape.targets "
            "(/metrics addresses per version)"
        )

    def spec(self) -> RolloutSpec:
        source = self.metrics_source()
        prometheus = (
            PrometheusSettings(**source.model_dump(exclude={"type"}))
            if isinstance(source, PrometheusMetricsConfig)
            else PrometheusSettings()
        )
        scrape = (
            self.scrape.model_copy(update=source.model_dump(exclude={"type"}))
            if isinstance(source, ScrapeMetricsConfig)
            else self.scrape
        )
        sections = {name: getattr(self, name) for name in Settings.model_fields}
        settings = Settings(**{**sections, "prometheus": prometheus, "scrape": scrape})
        target = Target(self.target.service, self.target.canary_version, self.target.stable_version)
        return RolloutSpec(self.name, target, settings)

    def notifier(self) -> WebhookNotifier | None:
        hooks = [Webhook(h.url, h.format) for h in self.notifications.webhooks]
        return WebhookNotifier(hooks, timeout_seconds=self.notifications.timeout_seconds) if hooks else None


def parse_rollout_file(text: str, *, source: str = "rollout file") -> RolloutFile:
    """Validate a rollout file's text; ``ConfigError`` names every bad or unknown key."""
    if len(text.encode()) > MAX_FILE_BYTES:
        raise ConfigError(f"{source} is larger than {MAX_FILE_BYTES // 1024} KiB")
    data = load_yaml(text, source)
    if not isinstance(data, dict):
        raise ConfigError(f"{source} must be a mapping with name, target, router and metrics")
    try:
        parsed = RolloutFile.model_validate(data)
        parsed.spec()  # names, versions, cross-field rules
    except ValidationError as exc:
        raise ConfigError(f"invalid {source}: {describe_validation_error(exc)}") from None
    except ConfigError as exc:
        raise ConfigError(f"invalid {source}: {exc}") from None
    return parsed


def load_rollout_file(path: str | Path) -> tuple[RolloutFile, str]:
    """The validated file and its text (the text is kept in the state directory for --resume)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"rollout file {path} is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"cannot read rollout file {path}: {exc.strerror or exc}") from exc
    return parse_rollout_file(text, source=f"rollout file {path}"), text


# -- the copy kept for --resume --------------------------------------------------------------

#: Stands in for a secret in the copy of the rollout file kept in the state directory.
REDACTED = "<redacted: resume with --config>"
_SECRET_HEADER_WORDS = ("authorization", "cookie", "token", "key", "secret", "auth")


def stored_copy(file: RolloutFile, text: str) -> str:
    """The rollout file as the state directory keeps it for ``--resume``: ``text`` itself
    when it holds no secret, else the file without its secrets (tokens, passwords,
    credentials in URLs or headers, webhook URLs), each replaced by :data:`REDACTED`."""
    data = file.model_dump(mode="json", exclude_unset=True)
    if not _redact(data):
        return text
    return "# secrets removed; resume with --config FILE\n" + yaml.safe_dump(data, sort_keys=False)


def _redact(data: dict[str, Any]) -> bool:
    found = False
    for section in (data.get("prometheus"), data.get("metrics")):
        if not isinstance(section, dict):
            continue
        for key in ("bearer_token", "basic_auth_password"):
            if section.get(key):
                section[key], found = REDACTED, True
        headers = section.get("headers") or {}
        for name in headers:
            if any(word in name.lower() for word in _SECRET_HEADER_WORDS):
                headers[name], found = REDACTED, True
        url = section.get("url")
        if isinstance(url, str) and "@" in url.partition("://")[2].split("/")[0]:
            section["url"], found = REDACTED, True
    for hook in (data.get("notifications") or {}).get("webhooks") or []:
        hook["url"], found = REDACTED, True
    return found


# -- building the router and the metrics provider -------------------------------------------

RouterBuilder = Callable[[Any, AsyncExitStack], Router]


def _haproxy(cfg: HAProxyConfig, stack: AsyncExitStack) -> Router:
    from canarypilot.routing.haproxy import HAProxyRouter

    return HAProxyRouter(
        cfg.runtime_api,
        backend=cfg.backend,
        stable_server=cfg.stable_server,
        canary_server=cfg.canary_server,
        timeout_seconds=cfg.timeout_seconds,
    )


def _nginx(cfg: NginxConfig, stack: AsyncExitStack) -> Router:
    from canarypilot.routing.nginx import NginxRouter

    return NginxRouter(
        cfg.include,
        upstream=cfg.upstream,
        stable=cfg.stable,
        canary=cfg.canary,
        config=cfg.config,
        nginx=cfg.nginx,
        pid_file=cfg.pid_file,
        confirm_url=cfg.confirm_url,
        timeout_seconds=cfg.timeout_seconds,
    )


def _kube(cfg: KubernetesConfig, stack: AsyncExitStack) -> Any:
    from canarypilot.routing.kubernetes import KubeClient

    client = KubeClient.from_environment(
        kubeconfig=cfg.kubeconfig, context=cfg.context, timeout_seconds=cfg.timeout_seconds
    )
    stack.push_async_callback(client.aclose)
    return client


def _ingress(cfg: IngressConfig, stack: AsyncExitStack) -> Router:
    from canarypilot.routing.ingress import IngressRouter

    return IngressRouter(
        _kube(cfg.kubernetes, stack),
        namespace=cfg.namespace,
        stable_ingress=cfg.stable_ingress,
        canary_service=cfg.canary_service,
        canary_ingress=cfg.canary_ingress,
    )


def _gateway(cfg: GatewayConfig, stack: AsyncExitStack) -> Router:
    from canarypilot.routing.gateway import HTTPRouteRouter

    return HTTPRouteRouter(
        _kube(cfg.kubernetes, stack),
        namespace=cfg.namespace,
        route=cfg.route,
        stable_service=cfg.stable_service,
        canary_service=cfg.canary_service,
        rule=cfg.rule,
    )


def _argo(cfg: ArgoConfig, stack: AsyncExitStack) -> Router:
    from canarypilot.routing.argo import ArgoRolloutRouter

    return ArgoRolloutRouter(_kube(cfg.kubernetes, stack), namespace=cfg.namespace, rollout=cfg.rollout)


#: ``router.type`` → builder. A new router kind is one entry here plus its config model.
ROUTERS: dict[str, RouterBuilder] = {
    "haproxy": _haproxy,
    "nginx": _nginx,
    "ingress": _ingress,
    "gateway": _gateway,
    "argo": _argo,
}


async def open_metrics(file: RolloutFile, stack: AsyncExitStack) -> MetricsProvider:
    """The provider ``file.metrics_source()`` names, closed when ``stack`` closes."""
    spec = file.spec()
    if isinstance(file.metrics_source(), PrometheusMetricsConfig):
        from canarypilot.metrics.prometheus import PrometheusMetrics

        return await stack.enter_async_context(
            PrometheusMetrics(spec.settings.prometheus, spec.settings.query)
        )
    from canarypilot.metrics.scrape import ScrapeMetrics

    provider = ScrapeMetrics.from_settings(spec.settings, service=spec.target.service)
    return await stack.enter_async_context(provider)


def open_router(file: RolloutFile, stack: AsyncExitStack) -> Router:
    return ROUTERS[file.router.type](file.router, stack)
