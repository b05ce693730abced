"""`canarypilot roi`: the article's cost model, with its defaults or with measured rates.

Every number of the model is a flag; ``--from-bench FILE`` takes the rollback and
false-positive rates from a ``canarypilot bench`` report instead of the article.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

import typer

from canarypilot.cli.common import friendly_errors


class Format(StrEnum):
    table = "table"
    json = "json"


def register(app: typer.Typer) -> None:
    app.command(
        "roi",
        help=(
            "Reproduce the article's deployment cost model (defaults: its numbers, net savings "
            "$65,483.34/month), change any input with a flag, or take the rollback and false-positive "
            "rates measured by `canarypilot bench` with --from-bench. Exit codes: 0 done, 2 invalid "
            "input or report."
        ),
    )(roi)


def _fraction(help_text: str) -> Any:
    return typer.Option(None, min=0.0, max=1.0, help=help_text)


def _amount(help_text: str) -> Any:
    return typer.Option(None, min=0.0, help=help_text)


def roi(
    output: Format = typer.Option(Format.table, "--format", "-f", help="Output format."),
    from_bench: str | None = typer.Option(
        None, "--from-bench", help="bench.json from `canarypilot bench --out DIR`: use its measured rates."
    ),
    bad_release_rate: float | None = _fraction(
        "With --from-bench: share of releases that are really bad [0.025]."
    ),
    monthly_revenue: float | None = _amount("Revenue per month, $ (unused by the model) [2400000]."),
    avg_incident_cost: float | None = _amount("Lost revenue per rollback incident, $ [2100]."),
    oncall_hourly_rate: float | None = _amount("On-call engineer cost per hour, $ [85]."),
    cloud_monthly_spend: float | None = _amount("Cloud bill per month, $ [45000]."),
    deployment_frequency: int | None = typer.Option(None, min=0, help="Deployments per month [120]."),
    static_rollback_rate: float | None = _fraction("Static canaries: share rolled back [0.23]."),
    static_rollback_minutes: float | None = _amount("Static canaries: on-call minutes per rollback [8.4]."),
    static_false_positive_rate: float | None = _fraction("Static canaries: false rollback share [0.31]."),
    overprovisioning_share: float | None = _fraction("Static: share of cloud spend wasted [0.18]."),
    dynamic_rollback_rate: float | None = _fraction("Latency-driven: share rolled back [0.025]."),
    dynamic_rollback_minutes: float | None = _amount("Latency-driven: on-call minutes per rollback [1.2]."),
    dynamic_false_positive_rate: float | None = _fraction("Latency-driven: false rollback share [0.04]."),
    right_sizing_share: float | None = _fraction("Latency-driven: share of cloud spend saved [0.12]."),
) -> None:
    with friendly_errors():
        from canarypilot._exceptions import ConfigError
        from canarypilot.roi import DEFAULT_BAD_RELEASE_RATE, CostInputs, compute, read_bench

        if bad_release_rate is not None and from_bench is None:
            raise ConfigError("--bad-release-rate only applies with --from-bench")
        inputs = CostInputs()
        measured: dict[str, Any] = {}
        if from_bench is not None:
            rates = read_bench(from_bench)
            bad = DEFAULT_BAD_RELEASE_RATE if bad_release_rate is None else bad_release_rate
            inputs = inputs.but(
                static_rollback_rate=rates["static"].rollback_rate(bad),
                static_false_positive_rate=rates["static"].false_rollback_rate,
                dynamic_rollback_rate=rates["dynamic"].rollback_rate(bad),
                dynamic_false_positive_rate=rates["dynamic"].false_rollback_rate,
            )
            measured = {
                "bench": from_bench,
                "bad_release_rate": bad,
                "static": {
                    "false_rollback_rate": rates["static"].false_rollback_rate,
                    "detection_rate": rates["static"].detection_rate,
                },
                "dynamic": {
                    "false_rollback_rate": rates["dynamic"].false_rollback_rate,
                    "detection_rate": rates["dynamic"].detection_rate,
                },
            }
        # Flags win over both the article's defaults and the measured rates.
        inputs = inputs.but(
            monthly_revenue=monthly_revenue,
            avg_incident_cost=avg_incident_cost,
            oncall_hourly_rate=oncall_hourly_rate,
            cloud_monthly_spend=cloud_monthly_spend,
            deployment_frequency=deployment_frequency,
            static_rollback_rate=static_rollback_rate,
            static_rollback_minutes=static_rollback_minutes,
            static_false_positive_rate=static_false_positive_rate,
            overprovisioning_share=overprovisioning_share,
            dynamic_rollback_rate=dynamic_rollback_rate,
            dynamic_rollback_minutes=dynamic_rollback_minutes,
            dynamic_false_positive_rate=dynamic_false_positive_rate,
            right_sizing_share=right_sizing_share,
        )
        report = compute(inputs)
    if output is Format.json:
        payload = report.to_dict()
        if measured:
            payload["measured"] = measured
        typer.echo(json.dumps(payload, indent=2))
        return
    r = report
    lines = [
        "=== Deployment Strategy ROI Analysis ===",
        f"Baseline Monthly Cost: ${r.baseline_total:,.2f}",
        f"Dynamic Strategy Cost: ${r.dynamic_total:,.2f}",
        f"Right-Sizing Savings: ${r.right_sizing_savings:,.2f}",
        f"Net Monthly Savings: ${r.net_savings:,.2f}",
        f"Rollback Reduction: {r.rollback_reduction_percent:.1f}%",
        f"False Positives Eliminated: {r.false_positives_eliminated}",
        "",
        f"  baseline: rollbacks ${r.baseline_rollback_impact:,.2f} "
        f"({inputs.static_rollback_rate:.2%} of {inputs.deployment_frequency} deployments) "
        f"+ overprovisioning ${r.overprovisioning_waste:,.2f}; false positives {r.static_false_positives}",
        f"  dynamic:  rollbacks ${r.dynamic_rollback_impact:,.2f} "
        f"({inputs.dynamic_rollback_rate:.2%}); false positives {r.dynamic_false_positives}",
    ]
    if measured:
        lines.append(
            f"  rates measured by {measured['bench']} (bad-release rate {measured['bad_release_rate']:.1%}): "
            f"static false rollbacks {measured['static']['false_rollback_rate']:.1%}, "
            f"detection {measured['static']['detection_rate']:.1%}; canarypilot false rollbacks "
            f"{measured['dynamic']['false_rollback_rate']:.1%}, detection "
            f"{measured['dynamic']['detection_rate']:.1%}"
        )
    else:
        lines.append("  rates: the article's assumptions (use --from-bench for measured ones)")
    typer.echo("\n".join(lines))
