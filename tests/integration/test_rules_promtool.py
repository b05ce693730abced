"""The rendered rule files through Prometheus' own tools and a real server.

``promtool check rules`` validates them; ``promtool test rules`` replays input
series in virtual time and proves each alert fires when it should and stays
quiet when it should not; a real Prometheus with backfilled data evaluates the
rules and every dashboard expression, and its recorded values are compared with
the product's own decision on the same data.
"""

from __future__ import annotations

import asyncio
import math
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from canarypilot.analysis.interpolate import safe_weight
from canarypilot.api import analyze
from canarypilot.local.processes import require
from canarypilot.local.prometheus import LocalPrometheus, openmetrics_text
from canarypilot.policy import Settings, load_settings
from canarypilot.render.alerts import alert_rules, render_alert_rules, render_alertmanager
from canarypilot.render.grafana import dashboard, dashboard_queries, pool_query
from canarypilot.render.monitoring import render_recording_rules
from tests.support.promdata import DEFAULT_BUCKETS, TYPES, ServiceData, Traffic, histogram_quantile

pytestmark = pytest.mark.integration

STEP = 15  # seconds between input samples
STEPS = 48  # 12 minutes of data

FAST = ((0.04, 0.97), (0.2, 0.03))
SLOW = ((0.04, 0.90), (0.3, 0.10))  # same shape, worse tail: p99 well above stable's


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require("promtool", "prometheus"), *args], capture_output=True, text=True, timeout=120, check=False
    )


def write_rules(tmp_path: Path, settings: Settings) -> list[Path]:
    recording = tmp_path / "recording.yml"
    alerting = tmp_path / "alerts.yml"
    recording.write_text(render_recording_rules(settings))
    alerting.write_text(render_alert_rules(settings))
    return [recording, alerting]


def traffic_series(
    job: str, traffic: Traffic, *, labels: dict[str, str] | None = None
) -> list[dict[str, str]]:
    """promtool input series of one version: linear counters, STEP seconds apart."""
    base = {**(labels or {}), "job": job, "version": traffic.version}

    def series(name: str, extra: dict[str, str], per_second: float) -> dict[str, str]:
        lab = ",".join(f'{k}="{v}"' for k, v in {**base, **extra}.items())
        return {"series": f"{name}{{{lab}}}", "values": f"0+{per_second * STEP!r}x{STEPS}"}

    out = [series("http_requests_total", {"code": "200"}, traffic.rps * (1 - traffic.error_fraction))]
    if traffic.error_fraction:
        out.append(series("http_requests_total", {"code": "500"}, traffic.rps * traffic.error_fraction))
    for le in (*DEFAULT_BUCKETS, math.inf):
        bound = "+Inf" if math.isinf(le) else repr(le)
        out.append(
            series(
                "http_request_duration_seconds_bucket",
                {"le": bound},
                traffic.rps * traffic.cumulative_share(le),
            )
        )
    return out


def p99(traffic: Traffic) -> float:
    return histogram_quantile(
        0.99, [(le, traffic.rps * traffic.cumulative_share(le)) for le in (*DEFAULT_BUCKETS, math.inf)]
    )


def four(x: float) -> float:
    """PromQL's round(x, 0.0001)."""
    return math.floor(x * 10000 + 0.5) / 10000


SCENARIOS: dict[str, tuple[Traffic, Traffic]] = {
    "healthy": (Traffic("v1-stable", 20, latency=FAST), Traffic("v2-canary", 10, latency=FAST)),
    "slow": (Traffic("v1-stable", 20, latency=FAST), Traffic("v2-canary", 10, latency=SLOW)),
    "failing": (
        Traffic("v1-stable", 20, latency=FAST, error_fraction=0.01),
        Traffic("v2-canary", 10, latency=FAST, error_fraction=0.05),
    ),
    # 0.2 rps: 60 requests in 5 minutes, fewer than the 100 needed to judge.
    "quiet": (Traffic("v1-stable", 20, latency=FAST), Traffic("v2-canary", 0.2, latency=FAST)),
}


def expected(job: str) -> tuple[float, float, float]:
    stable, canary = SCENARIOS[job]
    ld = (p99(canary) - p99(stable)) / p99(stable)
    ed = canary.error_fraction - stable.error_fraction
    return ld, ed, safe_weight(ld, ed)


def unit_test_file(rule_files: list[Path]) -> dict[str, Any]:
    series: list[dict[str, str]] = []
    for job, versions in SCENARIOS.items():
        for traffic in versions:
            series += traffic_series(job, traffic)
    # The controller applies 5% to the quiet canary; canarypilot's own job is up, then down at 5m.
    series.append(
        {"series": 'canarypilot_applied_weight{job="canarypilot",service="quiet"}', "values": f"5x{STEPS}"}
    )
    series.append({"series": 'up{job="canarypilot",instance="a:8080"}', "values": "1x20 0x27"})

    rules = alert_rules(Settings())

    def alert_at(time: str, name: str, alerts: list[dict[str, Any]]) -> dict[str, Any]:
        return {"eval_time": time, "alertname": name, "exp_alerts": alerts}

    def fired(index: int, value: float, **labels: str) -> dict[str, Any]:
        """The alert of rule ``index`` as Alertmanager would get it: labels and expanded annotations."""
        rule = rules[index]
        annotations = {}
        for key, text in rule["annotations"].items():
            text = text.replace("{{ $labels.job }}", labels.get("job", ""))
            text = text.replace("{{ $value | humanizePercentage }}", f"{value * 100:.4g}%")
            annotations[key] = text.replace("{{ $value }}", f"{value:g}")
        return {"exp_labels": {**rule["labels"], **labels}, "exp_annotations": annotations}

    samples = [(job, *expected(job)) for job in ("healthy", "slow", "failing")]
    ld_slow, ed_failing, w_slow = expected("slow")[0], expected("failing")[1], expected("slow")[2]
    return {
        "rule_files": [str(p) for p in rule_files],
        "evaluation_interval": f"{STEP}s",
        "tests": [
            {
                "interval": f"{STEP}s",
                "input_series": series,
                "promql_expr_test": [
                    {
                        "expr": "round(canarypilot:canary_latency_delta, 0.0001)",
                        "eval_time": "6m",
                        "exp_samples": [
                            {"labels": f'{{job="{j}"}}', "value": four(ld)} for j, ld, _, _ in samples
                        ],
                    },
                    {
                        "expr": "round(canarypilot:canary_error_delta, 0.0001)",
                        "eval_time": "6m",
                        "exp_samples": [
                            {"labels": f'{{job="{j}"}}', "value": four(ed)} for j, _, ed, _ in samples
                        ],
                    },
                    {
                        "expr": "canarypilot:canary_safe_weight",
                        "eval_time": "6m",
                        "exp_samples": [
                            {"labels": f'canarypilot:canary_safe_weight{{job="{j}"}}', "value": w}
                            for j, _, _, w in samples
                        ],
                    },
                ],
                "alert_rule_test": [
                    # CanaryWeightExceeded: pending for its first 30 s, firing after; never for the others.
                    alert_at("30s", "CanaryWeightExceeded", []),
                    alert_at("2m", "CanaryWeightExceeded", [fired(0, w_slow, job="slow")]),
                    alert_at("10m", "CanaryWeightExceeded", [fired(0, w_slow, job="slow")]),
                    # CanarySLOViolation: not before its 1 m, then latency for slow, errors for failing.
                    alert_at("1m", "CanarySLOViolation", []),
                    alert_at(
                        "4m",
                        "CanarySLOViolation",
                        [fired(2, ed_failing, job="failing"), fired(1, ld_slow, job="slow")],
                    ),
                    # CanaryMetricsMissing: only the quiet canary, only after 2 m.
                    alert_at("1m30s", "CanaryMetricsMissing", []),
                    alert_at("5m", "CanaryMetricsMissing", [fired(4, 5, job="quiet", service="quiet")]),
                    # CanaryAnalyzerDown: up until 5 m, down after; fires only a minute later.
                    alert_at("5m", "CanaryAnalyzerDown", []),
                    alert_at("5m45s", "CanaryAnalyzerDown", []),
                    alert_at("7m", "CanaryAnalyzerDown", [fired(3, 0, job="canarypilot", instance="a:8080")]),
                ],
            },
            {
                # No analysis service scraped at all: absent() fires, after the same minute.
                "interval": f"{STEP}s",
                "input_series": [{"series": 'up{job="other"}', "values": "1x20"}],
                "alert_rule_test": [
                    alert_at("30s", "CanaryAnalyzerDown", []),
                    alert_at("2m", "CanaryAnalyzerDown", [fired(3, 1, job="canarypilot")]),
                ],
            },
        ],
    }


def test_rendered_rules_pass_promtool_check(tmp_path: Path) -> None:
    result = promtool("check", "rules", *map(str, write_rules(tmp_path, Settings())))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 7 rules found" in result.stdout
    assert "SUCCESS: 5 rules found" in result.stdout


def test_custom_settings_render_custom_rules_that_promtool_accepts(tmp_path: Path) -> None:
    config = tmp_path / "canarypilot.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "query": {
                    "job_label": "app",
                    "version_label": "track",
                    "canary_version": "canary",
                    "stable_version": "stable",
                    "requests_metric": "http_server_requests_total",
                    "window": "2m",
                    "extra_selector": 'namespace="prod"',
                },
                "slo": {"max_latency_delta": 0.25},
                "monitoring": {"rule_namespace": "payments", "low_weight_below": 20, "analyzer_job": "cp"},
            }
        )
    )
    settings = load_settings(config, environ={})
    paths = write_rules(tmp_path, settings)
    result = promtool("check", "rules", *map(str, paths))
    assert result.returncode == 0, result.stdout + result.stderr
    text = "\n".join(p.read_text() for p in paths)
    assert "payments:canary_safe_weight < 20" in text
    assert "payments:canary_latency_delta > 0.25" in text
    assert 'http_server_requests_total{track=~"canary|stable",namespace="prod"}[2m]' in text
    assert 'up{job="cp"}' in text
    assert "canarypilot:" not in text


def test_alerts_fire_when_they_should_and_stay_quiet_otherwise(tmp_path: Path) -> None:
    spec = tmp_path / "tests.yml"
    spec.write_text(yaml.safe_dump(unit_test_file(write_rules(tmp_path, Settings())), sort_keys=False))
    result = promtool("test", "rules", str(spec))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_test_catches_a_wrong_expectation(tmp_path: Path) -> None:
    """The harness above can fail: claim the healthy canary pages and promtool must say no."""
    data = unit_test_file(write_rules(tmp_path, Settings()))
    data["tests"][0]["alert_rule_test"].append(
        {
            "eval_time": "10m",
            "alertname": "CanarySLOViolation",
            "exp_alerts": [{"exp_labels": {"job": "healthy", "severity": "critical", "team": "platform"}}],
        }
    )
    spec = tmp_path / "tests.yml"
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    result = promtool("test", "rules", str(spec))
    assert result.returncode != 0
    assert "CanarySLOViolation" in result.stdout + result.stderr


# A real Prometheus: backfilled data ending now, the rendered rules loaded, evaluated every second.

LIVE_JOBS = {
    "healthy": SCENARIOS["healthy"],
    "slow": SCENARIOS["slow"],
    "failing": SCENARIOS["failing"],
    "quiet": SCENARIOS["quiet"],
    # A dot in a service name must match literally, not as a regex wildcard.
    "pay.api": (
        Traffic("v1-stable", 20, latency=FAST),
        Traffic("v2-canary", 10, latency=((0.04, 0.98), (0.2, 0.02))),
    ),
}


def live_data(end: float) -> str:
    """Request metrics for every job plus what canarypilot and the app export about themselves."""
    samples: list[tuple[str, dict[str, str], float, float]] = []
    for job, versions in LIVE_JOBS.items():
        samples += ServiceData(job, versions, end=end, span_seconds=600).samples()
    for i in range(41):
        ts = end - 600 + i * 15
        own = {"job": "canarypilot", "instance": "cp:8080"}
        samples.append(("up", own, ts, 0.0))
        samples.append(("canarypilot_applied_weight", {**own, "service": "quiet"}, ts, 5.0))
        samples.append(("canarypilot_applied_weight", {**own, "service": "healthy"}, ts, 40.0))
        samples.append(("canary_safe_weight", {**own, "service": "healthy"}, ts, 100.0))
        for status, per_step in (("proceed", 1.0), ("hold", 0.5)):
            labels = {**own, "status": status}
            samples.append(("canarypilot_decisions_total", labels, ts, per_step * i))
        for version, in_use in (("v1-stable", 60.0), ("v2-canary", 15.0)):
            app = {"job": "healthy", "version": version}
            samples.append(("go_sql_stats_connections_in_use", app, ts, in_use))
            samples.append(("go_sql_stats_connections_max_open", app, ts, 100.0))
    types = {**TYPES, "canarypilot_decisions": "counter", "canarypilot_applied_weight": "gauge"}
    return openmetrics_text(samples, types)


def query(url: str, expr: str, at: float | None = None) -> list[dict[str, Any]]:
    params: dict[str, Any] = {"query": expr}
    if at is not None:
        params["time"] = at
    body = httpx.get(f"{url}/api/v1/query", params=params, timeout=10).json()
    assert body["status"] == "success", (expr, body)
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def wait_for(check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.5)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Settings]]:
    """Prometheus with the rules rendered from settings whose alerts wait one second, not minutes."""
    workdir = tmp_path_factory.mktemp("prom")
    settings = Settings().merged(
        {
            "monitoring": {
                "low_weight_for": "1s",
                "slo_violation_for": "1s",
                "metrics_missing_for": "1s",
                "analyzer_down_for": "1s",
            }
        }
    )
    rules = write_rules(workdir, settings)
    end = math.floor(time.time()) - 2
    with LocalPrometheus(
        workdir, openmetrics=live_data(end), rule_files=rules, evaluation_interval="1s"
    ) as prom:
        yield prom.url, settings


def test_recorded_values_match_the_products_own_decision(live: tuple[str, Settings]) -> None:
    url, settings = live
    weights = wait_for(lambda: query(url, "canarypilot:canary_safe_weight"))
    at = float(weights[0]["value"][0])
    recorded = {
        name: {r["metric"]["job"]: float(r["value"][1]) for r in query(url, f"canarypilot:{name}", at)}
        for name in ("canary_latency_delta", "canary_error_delta", "canary_safe_weight")
    }
    # The quiet canary served too few requests: no deltas and no weight, exactly like the judge's hold.
    assert set(recorded["canary_safe_weight"]) == {"healthy", "slow", "failing", "pay.api"}
    for job in ("healthy", "slow", "failing", "pay.api"):
        decision = asyncio.run(analyze(job, prometheus=url, settings=settings, at=at))
        assert decision.latency_delta is not None and decision.error_delta is not None
        assert recorded["canary_latency_delta"][job] == pytest.approx(
            decision.latency_delta, rel=1e-9, abs=1e-12
        )
        assert recorded["canary_error_delta"][job] == pytest.approx(decision.error_delta, rel=1e-9, abs=1e-12)
        assert recorded["canary_safe_weight"][job] == pytest.approx(decision.safe_weight, abs=1e-9)
    quiet = asyncio.run(analyze("quiet", prometheus=url, settings=settings, at=at))
    assert quiet.status.value == "hold"
    assert recorded["canary_safe_weight"]["slow"] == 14.5
    assert recorded["canary_safe_weight"]["healthy"] == 100.0


def test_alert_states_on_a_real_server(live: tuple[str, Settings]) -> None:
    url, _ = live

    def firing() -> set[tuple[str, str]]:
        alerts = httpx.get(f"{url}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
        return {
            (a["labels"]["alertname"], a["labels"].get("signal") or a["labels"]["job"])
            for a in alerts
            if a["state"] == "firing"
        }

    want = {
        ("CanaryWeightExceeded", "slow"),
        ("CanarySLOViolation", "latency"),
        ("CanarySLOViolation", "errors"),
        ("CanaryMetricsMissing", "quiet"),
        ("CanaryAnalyzerDown", "canarypilot"),
    }
    # With one-second "for" durations an alert may flicker while the recording group catches up
    # after start-up; what must hold is that the set settles on exactly these alerts.
    wait_for(lambda: firing() == want, timeout=45)
    assert firing() == want

    def violations_by_job() -> set[tuple[str, str]]:
        return {
            (r["metric"]["alertname"], r["metric"]["job"])
            for r in query(url, 'ALERTS{alertstate="firing"}')
            if r["metric"]["alertname"] == "CanarySLOViolation"
        }

    # The ALERTS series is written at the evaluation after the alert fires: on a busy machine
    # it can lag the /api/v1/alerts view by an evaluation or two.
    expected = {("CanarySLOViolation", "slow"), ("CanarySLOViolation", "failing")}
    wait_for(lambda: violations_by_job() == expected, timeout=30)
    assert violations_by_job() == expected


def test_every_dashboard_expression_runs_and_finds_data(live: tuple[str, Settings]) -> None:
    url, settings = live
    wait_for(lambda: query(url, 'ALERTS{alertname="CanarySLOViolation",alertstate="firing"}'), timeout=45)
    model = dashboard(settings)
    expressions = dashboard_queries(model)
    assert len(expressions) >= 13
    for expr in expressions:
        if expr.startswith("label_values("):
            metric, label = expr[len("label_values(") : -1].split(", ")
            values = httpx.get(
                f"{url}/api/v1/label/{label}/values", params={"match[]": metric}, timeout=10
            ).json()["data"]
            assert {"healthy", "slow", "failing", "pay.api"} <= set(values)
            continue
        service = "slow" if "CanarySLOViolation" in expr else "healthy"
        concrete = expr.replace("$service", service).replace("$__rate_interval", "1m")
        assert query(url, concrete), f"no data for dashboard expression {concrete}"
    pool = query(url, pool_query(settings).replace("$service", "healthy"))
    assert {r["metric"]["version"]: float(r["value"][1]) for r in pool} == {
        "v1-stable": 0.6,
        "v2-canary": 0.15,
    }


@pytest.mark.skipif(
    shutil.which("amtool") is None, reason="amtool comes with Debian's prometheus-alertmanager"
)
def test_alertmanager_config_is_valid_and_routes_pages_to_pagerduty(tmp_path: Path) -> None:
    config = tmp_path / "alertmanager.yml"
    config.write_text(render_alertmanager(Settings()))
    amtool = str(shutil.which("amtool"))
    check = subprocess.run([amtool, "check-config", str(config)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr

    def receiver(*labels: str) -> str:
        result = subprocess.run(
            [amtool, "config", "routes", "test", f"--config.file={config}", *labels],
            capture_output=True,
            text=True,
            timeout=60,
        )
        return result.stdout.strip()

    assert receiver("alertname=CanaryWeightExceeded", "severity=critical", "job=x") == "pagerduty-canary"
    assert (
        receiver("alertname=CanarySLOViolation", "severity=critical", "signal=errors") == "pagerduty-canary"
    )
    assert receiver("alertname=CanaryAnalyzerDown", "severity=warning") == "platform-team"
    assert receiver("alertname=CanaryMetricsMissing", "severity=warning") == "platform-team"
