"""The monitoring bundle as files: what the commands print, and that settings reach every line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from canarypilot._exceptions import ConfigError
from canarypilot.cli import app
from canarypilot.policy import Settings
from canarypilot.render.alerts import PAGERDUTY_KEY_PLACEHOLDER, alert_rules, alertmanager_config
from canarypilot.render.grafana import dashboard, dashboard_queries, pool_query
from canarypilot.render.monitoring import recording_rules, render_recording_rules

runner = CliRunner()


def test_recorded_series_are_namespaced_so_they_never_collide_with_the_services_gauges() -> None:
    records = [r["record"] for r in recording_rules(Settings())]
    assert "canarypilot:canary_latency_delta" in records
    assert "canarypilot:canary_error_delta" in records
    assert "canarypilot:canary_safe_weight" in records
    assert all(":" in name for name in records)  # instrumented metrics never have a colon


def test_safe_weight_rule_uses_the_interpolation_settings() -> None:
    settings = Settings().merged(
        {"interpolation": {"min_weight": 2, "max_weight": 50, "latency_decay": 7, "error_slope": 30}}
    )
    expr = recording_rules(settings)[-1]["expr"]
    assert "exp(-7 * canarypilot:canary_latency_delta)" in expr
    assert "1 - 30 * canarypilot:canary_error_delta" in expr
    assert "* 48, 0.1)" in expr  # max - min
    assert expr.rstrip().endswith("2, 50\n)")


def test_services_given_are_quoted_and_a_dot_is_literal_in_the_regex() -> None:
    text = render_recording_rules(Settings(), ["pay.api", "checkout"])
    assert 'job=~"checkout|pay\\\\.api"' in text
    single = render_recording_rules(Settings(), ["checkout"])
    assert 'job="checkout"' in single


@pytest.mark.parametrize("hostile", ['a"}) or vector(1) #', "x\ny", ""])
def test_hostile_service_names_are_refused(hostile: str) -> None:
    with pytest.raises(ConfigError):
        recording_rules(Settings(), [hostile])


def test_extra_selector_is_parsed_not_pasted() -> None:
    with pytest.raises(ConfigError):
        Settings().merged({"query": {"extra_selector": 'ns="a"}) or vector(1'}})


def test_every_alert_has_summary_description_and_runbook() -> None:
    rules = alert_rules(Settings())
    assert {r["alert"] for r in rules} == {
        "CanaryWeightExceeded",
        "CanarySLOViolation",
        "CanaryAnalyzerDown",
        "CanaryMetricsMissing",
    }
    for rule in rules:
        annotations = rule["annotations"]
        for key in ("summary", "description", "runbook", "runbook_url"):
            assert annotations[key].strip(), (rule["alert"], key)
        assert annotations["runbook_url"].endswith("/" + rule["alert"])


def test_alert_thresholds_follow_the_settings() -> None:
    settings = Settings().merged(
        {"slo": {"max_latency_delta": 0.3, "max_error_delta": 0.05}, "monitoring": {"low_weight_below": 25}}
    )
    exprs = {(r["alert"], r["labels"].get("signal")): r["expr"] for r in alert_rules(settings)}
    assert exprs[("CanaryWeightExceeded", None)] == "canarypilot:canary_safe_weight < 25"
    assert exprs[("CanarySLOViolation", "latency")] == "canarypilot:canary_latency_delta > 0.3"
    assert exprs[("CanarySLOViolation", "errors")] == "canarypilot:canary_error_delta > 0.05"


def test_alertmanager_pages_pagerduty_for_the_critical_canary_alerts_only() -> None:
    config = alertmanager_config(Settings())
    paging = config["route"]["routes"][0]
    assert paging["receiver"] == "pagerduty-canary"
    assert 'alertname=~"CanaryWeightExceeded|CanarySLOViolation"' in paging["matchers"]
    receiver = next(r for r in config["receivers"] if r["name"] == "pagerduty-canary")
    assert receiver["pagerduty_configs"][0]["routing_key"] == PAGERDUTY_KEY_PLACEHOLDER
    names = {r["name"] for r in config["receivers"]}
    assert config["route"]["receiver"] in names
    assert all(route["receiver"] in names for route in config["route"]["routes"])


def test_dashboard_is_templated_by_service_with_unique_panels() -> None:
    model = dashboard(Settings())
    assert model["schemaVersion"] == 39
    variables = {v["name"]: v for v in model["templating"]["list"]}
    assert variables["service"]["query"]["query"] == "label_values(canarypilot:requests:increase, job)"
    ids = [p["id"] for p in model["panels"]]
    assert len(ids) == len(set(ids))
    for panel in model["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"
        for target in panel["targets"]:
            assert "$service" in target["expr"] or panel["title"].startswith("Decisions of the analysis")
    titles = " ".join(p["title"] for p in model["panels"])
    for wanted in (
        "Safe weight and applied weight",
        "Latency delta",
        "Error delta",
        "p99",
        "Decisions",
        "SLO",
    ):
        assert wanted in titles
    assert "Connection-pool" in titles


def test_dashboard_draws_the_configured_thresholds() -> None:
    model = dashboard(Settings().merged({"slo": {"max_latency_delta": 0.2}}))
    panel = next(
        p for p in model["panels"] if p["title"].startswith("Latency delta") and p["type"] == "timeseries"
    )
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert steps[-1] == {"color": "red", "value": 0.2}
    assert panel["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] == "dashed"


def test_pool_query_is_configurable_and_typos_are_reported() -> None:
    custom = Settings().merged(
        {"monitoring": {"pool_utilisation_query": "max by ($version_label) (hikari{$selector})"}}
    )
    assert pool_query(custom) == 'max by (version) (hikari{job="$service"})'
    assert any("hikari" in q for q in dashboard_queries(dashboard(custom)))
    broken = Settings().merged({"monitoring": {"pool_utilisation_query": "x{$selectr}"}})
    with pytest.raises(ConfigError, match="selectr"):
        pool_query(broken)


def test_cli_renders_each_file(tmp_path: Path) -> None:
    rules = runner.invoke(app, ["render", "prometheus-rules"])
    assert rules.exit_code == 0
    assert (
        yaml.safe_load(rules.stdout)["groups"][0]["rules"][-1]["record"] == "canarypilot:canary_safe_weight"
    )
    alerts = runner.invoke(app, ["render", "alerts", "--interval", "15s"])
    assert yaml.safe_load(alerts.stdout)["groups"][0]["interval"] == "15s"
    manager = runner.invoke(app, ["render", "alertmanager"])
    assert manager.stdout.startswith("# Alertmanager routing")
    assert yaml.safe_load(manager.stdout)["route"]["receiver"] == "platform-team"
    out = tmp_path / "dash.json"
    grafana = runner.invoke(app, ["render", "grafana", "--uid", "payments", "-o", str(out)])
    assert grafana.exit_code == 0
    assert json.loads(out.read_text())["uid"] == "payments"


def test_cli_takes_names_and_thresholds_from_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("monitoring:\n  rule_namespace: shop\nslo:\n  max_error_delta: 0.01\n")
    result = runner.invoke(app, ["render", "alerts", "-c", str(config)])
    assert result.exit_code == 0
    assert "shop:canary_error_delta > 0.01" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["render", "prometheus-rules", "--service", 'a"b'], "invalid service"),
        (["render", "alerts", "--interval", "soon"], "--interval"),
        (["render", "grafana", "--uid", "a b"], "dashboard uid"),
        (["render", "grafana", "-o", "/nonexistent/dir/x.json"], "cannot write"),
        (["render", "alerts", "-c", "/nonexistent.yaml"], "cannot read config"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
