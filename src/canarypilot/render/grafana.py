"""A Grafana dashboard (JSON model, schema 39 — Grafana 10.4/11) for canaries, one service at a time.

The article's dashboard shows the weight interpolation, SLO violations and the
connection pool. This one shows, for the service picked in the ``service``
variable: the safe weight (recorded by Prometheus and reported by the analysis
service) against the weight actually applied, both deltas against their SLO
thresholds, p99 and error rate per version, the decisions taken, firing SLO
alerts, and the connection-pool utilisation (query configurable in
``monitoring.pool_utilisation_query``).

Every expression is listed by :func:`dashboard_queries` so the tests can run each
one against a real Prometheus.
"""

from __future__ import annotations

import json
from string import Template
from typing import Any

from canarypilot._exceptions import ConfigError
from canarypilot.policy import Settings
from canarypilot.render.alerts import APPLIED_WEIGHT, DECISIONS
from canarypilot.render.monitoring import SeriesNames

SCHEMA_VERSION = 39
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
#: What the analysis service exports per service (the article's gauge names).
ANALYZER_SAFE_WEIGHT = "canary_safe_weight"


def pool_query(settings: Settings) -> str:
    """``monitoring.pool_utilisation_query`` with the dashboard's service selector filled in."""
    q = settings.query
    values = {
        "selector": f'{q.job_label}="$service"',
        "service": "$service",
        "job_label": q.job_label,
        "version_label": q.version_label,
    }
    try:
        return Template(settings.monitoring.pool_utilisation_query).substitute(values)
    except (KeyError, ValueError) as exc:
        raise ConfigError(
            f"monitoring.pool_utilisation_query has an unknown placeholder {exc}; "
            "use $selector, $service, $job_label, $version_label"
        ) from None


def _panels(settings: Settings) -> list[dict[str, Any]]:
    q, slo, mon = settings.query, settings.slo, settings.monitoring
    n = SeriesNames.of(settings)
    job = f'{q.job_label}="$service"'
    svc = f'{mon.service_label}="$service"'
    v = q.version_label
    pct = f"p{q.quantile * 100:g}"
    low = [("red", None), ("green", mon.low_weight_below)]
    lat = [("green", None), ("red", slo.max_latency_delta)]
    err = [("green", None), ("red", slo.max_error_delta)]
    return [
        _stat("Safe weight (recorded)", f"{n.safe_weight}{{{job}}}", "percent", low, (0, 0)),
        _stat("Applied weight", f"max({APPLIED_WEIGHT}{{{svc}}})", "percent", None, (6, 0)),
        _stat(f"Latency delta ({pct})", f"{n.latency_delta}{{{job}}}", "percentunit", lat, (12, 0)),
        _stat("Error delta", f"{n.error_delta}{{{job}}}", "percentunit", err, (18, 0)),
        _series(
            "Safe weight and applied weight",
            [
                (f"{n.safe_weight}{{{job}}}", "safe weight (Prometheus rules)"),
                (f"max({ANALYZER_SAFE_WEIGHT}{{{svc}}})", "safe weight (analysis service)"),
                (f"max({APPLIED_WEIGHT}{{{svc}}})", "applied weight"),
            ],
            "percent",
            low,
            (0, 4, 24),
        ),
        _series(
            f"Latency delta ({pct}) against the SLO",
            [(f"{n.latency_delta}{{{job}}}", "latency delta")],
            "percentunit",
            lat,
            (0, 12),
        ),
        _series(
            "Error delta against the SLO",
            [(f"{n.error_delta}{{{job}}}", "error delta")],
            "percentunit",
            err,
            (12, 12),
        ),
        _series(
            f"{pct} latency per version",
            [(f"{n.quantile}{{{job}}}", f"{{{{{v}}}}}")],
            "s",
            None,
            (0, 20),
        ),
        _series(
            "Error rate per version",
            [(f"{n.error_ratio}{{{job}}}", f"{{{{{v}}}}}")],
            "percentunit",
            None,
            (12, 20),
        ),
        _series(
            # The analysis service counts decisions by status only, across all services.
            "Decisions of the analysis service (all services)",
            [(f"sum by (status) (increase({DECISIONS}[$__rate_interval]))", "{{status}}")],
            "short",
            None,
            (0, 28),
            bars=True,
        ),
        _series(
            "SLO violations (firing alerts)",
            [
                (
                    f'sum by (signal) (ALERTS{{alertname="CanarySLOViolation",alertstate="firing",{job}}})',
                    "{{signal}}",
                )
            ],
            "short",
            None,
            (12, 28),
            bars=True,
        ),
        _series(
            "Connection-pool utilisation",
            [(pool_query(settings), f"{{{{{v}}}}}")],
            "percentunit",
            [("green", None), ("orange", 0.8), ("red", 0.95)],
            (0, 36, 24),
        ),
    ]


def dashboard(
    settings: Settings, *, title: str = "canarypilot: canary analysis", uid: str = "canarypilot"
) -> dict[str, Any]:
    """The dashboard's JSON model, ready for Grafana's import or provisioning."""
    q = settings.query
    n = SeriesNames.of(settings)
    panels = _panels(settings)
    for index, panel in enumerate(panels, start=1):
        panel["id"] = index
    return {
        "uid": uid,
        "title": title,
        "description": "Safe weight, deltas against SLOs and per-version signals of a canary release.",
        "tags": ["canarypilot", "canary"],
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "timezone": "browser",
        "annotations": {"list": []},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                },
                {
                    "name": "service",
                    "label": "Service",
                    "type": "query",
                    "datasource": DATASOURCE,
                    "definition": f"label_values({n.requests}, {q.job_label})",
                    "query": {
                        "qryType": 1,
                        "query": f"label_values({n.requests}, {q.job_label})",
                        "refId": "PrometheusVariableQueryEditor-VariableQuery",
                    },
                    "refresh": 2,
                    "sort": 1,
                    "current": {},
                    "hide": 0,
                    "includeAll": False,
                    "multi": False,
                },
            ]
        },
        "panels": panels,
    }


def dashboard_queries(model: dict[str, Any]) -> list[str]:
    """Every PromQL expression in a dashboard model: panel targets and query variables."""
    out = [t["expr"] for panel in model["panels"] for t in panel.get("targets", [])]
    for var in model["templating"]["list"]:
        if var["type"] == "query":
            out.append(var["query"]["query"])
    return out


def render_dashboard(settings: Settings, *, title: str | None = None, uid: str | None = None) -> str:
    """The ``canarypilot render grafana`` file (JSON)."""
    kwargs = {k: v for k, v in (("title", title), ("uid", uid)) if v}
    return json.dumps(dashboard(settings, **kwargs), indent=2) + "\n"


def _thresholds(steps: list[tuple[str, float | None]] | None) -> dict[str, Any]:
    steps = steps or [("green", None)]
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for c, v in steps]}


def _target(expr: str, legend: str, ref: int) -> dict[str, Any]:
    return {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "refId": chr(ord("A") + ref)}


def _stat(
    title: str, expr: str, unit: str, steps: list[tuple[str, float | None]] | None, at: tuple[int, int]
) -> dict[str, Any]:
    return {
        "type": "stat",
        "title": title,
        "datasource": DATASOURCE,
        "gridPos": {"x": at[0], "y": at[1], "w": 6, "h": 4},
        "targets": [_target(expr, "", 0)],
        "fieldConfig": {"defaults": {"unit": unit, "thresholds": _thresholds(steps)}, "overrides": []},
        "options": {"colorMode": "background", "reduceOptions": {"calcs": ["lastNotNull"]}},
    }


def _series(
    title: str,
    queries: list[tuple[str, str]],
    unit: str,
    steps: list[tuple[str, float | None]] | None,
    at: tuple[int, ...],
    *,
    bars: bool = False,
) -> dict[str, Any]:
    width = at[2] if len(at) > 2 else 12
    custom: dict[str, Any] = {"drawStyle": "bars" if bars else "line", "lineWidth": 2, "fillOpacity": 10}
    if steps:
        # The SLO threshold drawn as a dashed line across the graph.
        custom["thresholdsStyle"] = {"mode": "dashed"}
    return {
        "type": "timeseries",
        "title": title,
        "datasource": DATASOURCE,
        "gridPos": {"x": at[0], "y": at[1], "w": width, "h": 8},
        "targets": [_target(expr, legend, i) for i, (expr, legend) in enumerate(queries)],
        "fieldConfig": {
            "defaults": {"unit": unit, "thresholds": _thresholds(steps), "custom": custom},
            "overrides": [],
        },
        "options": {"legend": {"displayMode": "table", "placement": "bottom"}, "tooltip": {"mode": "multi"}},
    }


__all__ = ["dashboard", "dashboard_queries", "pool_query", "render_dashboard"]
