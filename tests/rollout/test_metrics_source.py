"""Which metrics a rollout file reads when it has no ``metrics:`` block.

The order is ``metrics:``, then ``prometheus.url``, then ``scrape.targets``;
with none of them the file is refused with a message naming the options.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

import pytest
import yaml

from canarypilot._exceptions import ConfigError
from canarypilot.metrics.prometheus import PrometheusMetrics
from canarypilot.metrics.scrape import ScrapeMetrics
from canarypilot.rollout.config import (
    PrometheusMetricsConfig,
    RolloutFile,
    ScrapeMetricsConfig,
    open_metrics,
    parse_rollout_file,
)

BASE: dict[str, Any] = {
    "name": "payment-api",
    "target": {"service": "payment-api"},
    "router": {"type": "haproxy", "runtime_api": "/run/haproxy/admin.sock", "backend": "app"},
}
TARGETS = {"v1-stable": ["127.0.0.1:9101"], "v2-canary": ["127.0.0.1:9102"]}


def parse(**sections: Any) -> RolloutFile:
    return parse_rollout_file(yaml.safe_dump({**BASE, **sections}), source="r.yaml")


def test_prometheus_url_is_used_without_a_metrics_block() -> None:
    file = parse(prometheus={"url": "http://prom:9090", "timeout_seconds": 3}, scrape={"targets": TARGETS})
    source = file.metrics_source()
    assert isinstance(source, PrometheusMetricsConfig) and source.url == "http://prom:9090"
    assert file.spec().settings.prometheus.timeout_seconds == 3


def test_scrape_targets_are_used_when_no_prometheus_url_is_set() -> None:
    file = parse(scrape={"targets": TARGETS, "interval_seconds": 5, "timeout_seconds": 2})
    source = file.metrics_source()
    assert isinstance(source, ScrapeMetricsConfig) and source.targets == TARGETS
    scrape = file.spec().settings.scrape
    assert (scrape.targets, scrape.interval_seconds, scrape.timeout_seconds) == (TARGETS, 5, 2)
    assert file.spec().settings.prometheus.url is None


def test_an_explicit_metrics_block_wins_over_both_sections() -> None:
    file = parse(
        metrics={"type": "scrape", "targets": TARGETS, "interval_seconds": 2},
        prometheus={"url": "http://prom:9090"},
    )
    assert isinstance(file.metrics_source(), ScrapeMetricsConfig)
    assert file.spec().settings.scrape.interval_seconds == 2


def test_no_source_at_all_is_refused_naming_both_options() -> None:
    with pytest.raises(ConfigError, match="invalid r.yaml") as caught:
        parse()
    assert "prometheus.url" in str(caught.value) and "scrape.targets" in str(caught.value)


def test_unknown_keys_in_the_new_sections_are_named() -> None:
    with pytest.raises(ConfigError, match=r"scrape\.typo: unknown key"):
        parse(scrape={"targets": TARGETS, "typo": 1})


@pytest.mark.parametrize(
    ("sections", "kind"),
    [
        ({"prometheus": {"url": "http://127.0.0.1:9"}}, PrometheusMetrics),
        ({"scrape": {"targets": TARGETS}}, ScrapeMetrics),
    ],
)
async def test_open_metrics_builds_the_selected_provider(sections: dict[str, Any], kind: type) -> None:
    file = parse(**sections)
    async with AsyncExitStack() as stack:
        provider = await open_metrics(file, stack)
        assert isinstance(provider, kind)
        if isinstance(provider, ScrapeMetrics):
            assert provider.service == "payment-api"
            assert sorted(t.version for t in provider.targets) == ["v1-stable", "v2-canary"]
