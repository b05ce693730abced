"""Alerting rules and an Alertmanager route for canaries, each alert with its runbook.

Four alerts, all read from the recorded series of :mod:`canarypilot.render.monitoring`
(so they page on exactly what the product decides from):

* ``CanaryWeightExceeded`` — the article's alert: the safe weight stayed below
  ``monitoring.low_weight_below`` (15) for ``low_weight_for`` (30s).
* ``CanarySLOViolation`` — a delta above its SLO threshold (one rule per signal).
* ``CanaryAnalyzerDown`` — the analysis service is not scraped or reports down.
* ``CanaryMetricsMissing`` — a canary takes traffic (``canarypilot_applied_weight``
  > 0) but cannot be judged: no canary series, too few requests, no stable p99.

The Alertmanager example sends the two paging alerts to PagerDuty (placeholder
key) and the rest to a team receiver.
"""

from __future__ import annotations

from typing import Any

from canarypilot.metrics.selectors import quote
from canarypilot.policy import Settings
from canarypilot.render.monitoring import SeriesNames, dump_yaml, number, rule_file, version_matcher

#: Gauge the rollout controller exports: the weight it applied, per service (label ``service``).
APPLIED_WEIGHT = "canarypilot_applied_weight"
#: Counter the analysis service exports: decisions by ``status`` (proceed|hold|rollback).
DECISIONS = "canarypilot_decisions_total"
#: Placeholder the user replaces with a PagerDuty Events API v2 integration key.
PAGERDUTY_KEY_PLACEHOLDER = "REPLACE-WITH-PAGERDUTY-INTEGRATION-KEY"

_RUNBOOKS = {
    "CanaryWeightExceeded": (
        "1. Open the canarypilot dashboard for the service: which delta drags the weight down? "
        "2. If the rollout still sends more traffic than the safe weight, abort it "
        "(kubectl argo rollouts abort <rollout>, or let canarypilot roll back). "
        "3. Compare p99 and error rate per version; check the canary's logs, its database pool "
        "and cache warm-up. 4. Resume only with a fix or once the deltas are back under the SLO."
    ),
    "CanarySLOViolation": (
        "1. The breaker rolls back after consecutive violations; confirm the rollout is aborting. "
        "2. If not, abort it by hand. 3. Latency: look for cold caches, connection pool exhaustion "
        "(pool panel), CPU throttling. Errors: read the canary's 5xx responses and logs. "
        "4. Keep the canary's pods for debugging before they are scaled down."
    ),
    "CanaryAnalyzerDown": (
        "1. kubectl get pods -l app=<analyzer>; read its logs and /healthz. "
        "2. While it is down Argo's analysis errors and, after consecutiveErrorLimit, fails the "
        "rollout: pause rollouts (kubectl argo rollouts pause) until it is back. "
        "3. Check that Prometheus can reach it (Status > Targets)."
    ),
    "CanaryMetricsMissing": (
        "1. Check the canary's pods are Ready and carry the version label the queries expect. "
        "2. Query the raw request metric for the canary version in Prometheus: no series means "
        "the scrape config or the labels are wrong; few requests means too little traffic to "
        "judge (raise the weight's floor or wait). 3. canarypilot holds meanwhile; it rolls back "
        "when metrics stay unavailable past breaker.metrics_outage_seconds."
    ),
}


def alert_rules(settings: Settings) -> list[dict[str, Any]]:
    """The alerting rules, in the order they are documented."""
    q, mon, slo = settings.query, settings.monitoring, settings.slo
    names = SeriesNames.of(settings)
    job = f"{{{{ $labels.{q.job_label} }}}}"
    low = number(mon.low_weight_below)

    def alert(name: str, expr: str, duration: str, severity: str, summary: str, text: str) -> dict[str, Any]:
        return {
            "alert": name,
            "expr": expr,
            "for": duration,
            "labels": {"severity": severity, "team": "platform"},
            "annotations": {
                "summary": summary,
                "description": text,
                "runbook": _RUNBOOKS[name],
                "runbook_url": f"{mon.runbook_url.rstrip('/')}/{name}",
            },
        }

    weight = alert(
        "CanaryWeightExceeded",
        f"{names.safe_weight} < {low}",
        mon.low_weight_for,
        "critical",
        f"Canary of {job} may safely take only {{{{ $value }}}}% of traffic",
        f"The safe weight computed from the canary's latency and error deltas has stayed below {low}% "
        f"for {mon.low_weight_for}: the canary is clearly worse than {q.stable_version}, and any traffic "
        "above this weight spends error budget.",
    )
    latency = alert(
        "CanarySLOViolation",
        f"{names.latency_delta} > {number(slo.max_latency_delta)}",
        mon.slo_violation_for,
        "critical",
        f"Canary of {job} is {{{{ $value | humanizePercentage }}}} slower at p{q.quantile * 100:g}",
        f"(p{q.quantile * 100:g} canary - p{q.quantile * 100:g} stable) / p{q.quantile * 100:g} stable "
        f"has exceeded {number(slo.max_latency_delta)} for {mon.slo_violation_for}: "
        "the latency SLO of the canary is violated.",
    )
    latency["labels"]["signal"] = "latency"
    errors = alert(
        "CanarySLOViolation",
        f"{names.error_delta} > {number(slo.max_error_delta)}",
        mon.slo_violation_for,
        "critical",
        f"Canary of {job} fails {{{{ $value | humanizePercentage }}}} more requests than stable",
        f"Error rate canary - error rate stable has exceeded {number(slo.max_error_delta)} "
        f"for {mon.slo_violation_for}: the error SLO of the canary is violated.",
    )
    errors["labels"]["signal"] = "errors"
    up = f"up{{job={quote(mon.analyzer_job)}}}"
    analyzer = alert(
        "CanaryAnalyzerDown",
        f"{up} == 0 or absent({up})",
        mon.analyzer_down_for,
        "warning",
        "The canarypilot analysis service is down",
        f"Prometheus has not scraped job {mon.analyzer_job} successfully for {mon.analyzer_down_for}. "
        "Rollouts gated by its analysis cannot progress and will fail after consecutive errors.",
    )
    service_label = quote(mon.service_label)
    canary = version_matcher(q, q.canary_version)
    missing = alert(
        "CanaryMetricsMissing",
        f'label_replace({APPLIED_WEIGHT} > 0, {quote(q.job_label)}, "$1", {service_label}, "(.+)")\n'
        f"unless on ({q.job_label}) {names.latency_delta}",
        mon.metrics_missing_for,
        "warning",
        f"Canary of {job} takes {{{{ $value }}}}% of traffic but cannot be judged",
        f"The canary takes traffic but has had no usable metrics for {mon.metrics_missing_for}: "
        f"no {q.requests_metric}{{{canary}}} series, fewer than {number(slo.min_canary_requests)} "
        "requests in the window, or no stable p99. canarypilot holds the rollout meanwhile.",
    )
    return [weight, latency, errors, analyzer, missing]


def render_alert_rules(settings: Settings, *, interval: str | None = None) -> str:
    """The ``canarypilot render alerts`` file."""
    group: dict[str, Any] = {"name": f"{settings.monitoring.rule_namespace}.alerts"}
    if interval:
        group["interval"] = interval
    group["rules"] = alert_rules(settings)
    return rule_file([group])


def alertmanager_config(settings: Settings) -> dict[str, Any]:
    """An Alertmanager configuration routing canary alerts; PagerDuty pages, the rest goes to a team."""
    q = settings.query
    paging = "CanaryWeightExceeded|CanarySLOViolation"
    return {
        "route": {
            "receiver": "platform-team",
            "group_by": ["alertname", q.job_label],
            "group_wait": "10s",
            "group_interval": "1m",
            "repeat_interval": "2h",
            "routes": [
                {
                    "receiver": "pagerduty-canary",
                    "matchers": [f"alertname=~{quote(paging)}", 'severity="critical"'],
                    "group_wait": "0s",
                    "repeat_interval": "30m",
                },
                {
                    "receiver": "platform-team",
                    "matchers": ['alertname=~"CanaryAnalyzerDown|CanaryMetricsMissing"'],
                },
            ],
        },
        "inhibit_rules": [
            {
                # A violated SLO explains a low safe weight: page once, for the cause.
                "source_matchers": ['alertname="CanarySLOViolation"'],
                "target_matchers": ['alertname="CanaryWeightExceeded"'],
                "equal": [q.job_label],
            }
        ],
        "receivers": [
            {
                "name": "pagerduty-canary",
                "pagerduty_configs": [
                    {
                        "routing_key": PAGERDUTY_KEY_PLACEHOLDER,
                        "severity": "critical",
                        "description": "{{ .CommonAnnotations.summary }}",
                        "details": {
                            "description": "{{ .CommonAnnotations.description }}",
                            "runbook": "{{ .CommonAnnotations.runbook }}",
                            "runbook_url": "{{ .CommonAnnotations.runbook_url }}",
                        },
                    }
                ],
            },
            # No integration: add email_configs, slack_configs or webhook_configs for your team.
            {"name": "platform-team"},
        ],
    }


def render_alertmanager(settings: Settings) -> str:
    """The ``canarypilot render alertmanager`` file, with a comment about the placeholder key."""
    header = (
        "# Alertmanager routing for canarypilot's alerts (generated by canarypilot render alertmanager).\n"
        f"# Replace {PAGERDUTY_KEY_PLACEHOLDER} with a PagerDuty Events API v2 integration key,\n"
        "# or better, use routing_key_file with a mounted secret.\n"
    )
    return header + dump_yaml(alertmanager_config(settings))


__all__ = [
    "APPLIED_WEIGHT",
    "DECISIONS",
    "alert_rules",
    "alertmanager_config",
    "render_alert_rules",
    "render_alertmanager",
]
