"""The rollout file (validation, routers built from it) and webhook bodies."""

from __future__ import annotations

import json
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest
import yaml

from canarypilot._exceptions import ConfigError, TemporaryError
from canarypilot.rollout import Notification, Webhook, WebhookNotifier
from canarypilot.rollout.config import open_router, parse_rollout_file
from canarypilot.routing.gateway import HTTPRouteRouter
from canarypilot.routing.haproxy import HAProxyRouter
from canarypilot.routing.nginx import NginxRouter

BASE = {
    "name": "payment-api",
    "target": {"service": "payment-api"},
    "router": {"type": "haproxy", "runtime_api": "/run/haproxy/admin.sock", "backend": "app"},
    "metrics": {"type": "prometheus", "url": "http://prometheus:9090", "timeout_seconds": 3},
}


def parse(**changes: object):  # type: ignore[no-untyped-def]
    return parse_rollout_file(yaml.safe_dump({**BASE, **changes}), source="r.yaml")


def test_settings_sections_and_prometheus_keys_reach_the_spec() -> None:
    spec = parse(slo={"max_latency_delta": 0.1}, rollout={"pauses_seconds": [30, 30]}).spec()
    assert spec.settings.slo.max_latency_delta == 0.1
    assert spec.settings.rollout.pauses_seconds == [30, 30]
    assert spec.settings.prometheus.url == "http://prometheus:9090"
    assert spec.settings.prometheus.timeout_seconds == 3
    assert spec.target.canary_version == "v2-canary"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"slo": {"max_latency_delta": 0.1, "typo": 1}}, "slo.typo: unknown key"),
        ({"router": {"type": "haproxy", "backend": "app"}}, "router.haproxy.runtime_api: Field required"),
        ({"router": {"type": "f5"}}, "router"),
        ({"name": "bad name; rm -rf"}, "invalid rollout name"),
        ({"target": {"service": "x", "canary_version": "v1-stable"}}, "must differ"),
        ({"notifications": {"webhooks": [{"url": "ftp://x"}]}}, "notifications.webhooks.0.url"),
        ({"extra": 1}, "extra: unknown key"),
    ],
)
def test_bad_files_name_the_key(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match="invalid r.yaml") as caught:
        parse(**changes)
    assert message in str(caught.value)


def test_oversized_and_non_mapping_files_are_refused() -> None:
    with pytest.raises(ConfigError, match="larger than"):
        parse_rollout_file("#" * 300_000)
    with pytest.raises(ConfigError, match="must be a mapping"):
        parse_rollout_file("- a\n- b\n")


async def test_each_router_type_is_built_from_its_section(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "current-context": "c",
                "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
                "clusters": [{"name": "k", "cluster": {"server": "https://127.0.0.1:6443"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
            }
        )
    )
    nginx = {"type": "nginx", "include": str(tmp_path / "u.conf"), "upstream": "app",
             "stable": "10.0.0.1:80", "canary": "10.0.0.2:80"}  # fmt: skip
    gateway = {"type": "gateway", "namespace": "prod", "route": "web", "stable_service": "a",
               "canary_service": "b", "kubernetes": {"kubeconfig": str(kubeconfig)}}  # fmt: skip
    async with AsyncExitStack() as stack:
        assert isinstance(open_router(parse(), stack), HAProxyRouter)
        assert isinstance(open_router(parse(router=nginx), stack), NginxRouter)
        assert isinstance(open_router(parse(router=gateway), stack), HTTPRouteRouter)


async def test_webhook_bodies_json_and_slack_and_failures_hide_the_secret_path() -> None:
    seen: list[tuple[str, dict[str, object]]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((str(request.url), json.loads(request.content)))
        return httpx.Response(500 if "broken" in str(request.url) else 200)

    note = Notification("payment-api", "rolled_back", 0.0, ("p99 +40%", "severe"), 1_700_000_000.0)
    notifier = WebhookNotifier(
        [Webhook("https://hooks.example/x"), Webhook("https://hooks.slack.com/services/T/B/SECRET", "slack")],
        transport=httpx.MockTransport(handler),
    )
    await notifier.notify(note)
    assert seen[0][1] == {
        "name": "payment-api",
        "phase": "rolled_back",
        "weight": 0.0,
        "reasons": ["p99 +40%", "severe"],
        "timestamp": "2023-11-14T22:13:20+00:00",
    }
    assert "rolled_back" in str(seen[1][1]["text"]) and "payment-api" in str(seen[1][1]["text"])

    broken = WebhookNotifier(
        [Webhook("https://hooks.example/broken/SECRET")], transport=httpx.MockTransport(handler)
    )
    with pytest.raises(TemporaryError) as caught:
        await broken.notify(note)
    assert "HTTP 500" in str(caught.value) and "SECRET" not in str(caught.value)
