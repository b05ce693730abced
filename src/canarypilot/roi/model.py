"""The article's cost model, reproduced to the cent, with every assumption a parameter.

The article's ``DeploymentROIAnalyzer`` script compares a month of static
canaries with a month of latency-driven ones. ``CostInputs()`` holds its
defaults and ``compute`` follows its arithmetic exactly, including its quirks
(documented in docs/roi.md): the overprovisioning waste is charged to the
baseline *and* the right-sizing saving is added again on top; false positives
are counted (truncated, as Python's ``int`` does) but never priced; the
monthly revenue is an input that no formula uses.

>>> r = compute(CostInputs())
>>> r.baseline_total, r.dynamic_total, r.net_savings
(66388.44, 6305.1, 65483.34)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from canarypilot._exceptions import ConfigError

FRACTIONS = frozenset(
    {
        "static_rollback_rate",
        "static_false_positive_rate",
        "overprovisioning_share",
        "dynamic_rollback_rate",
        "dynamic_false_positive_rate",
        "right_sizing_share",
    }
)


@dataclass(frozen=True, slots=True)
class CostInputs:
    """Every number of the model; the defaults are the article's."""

    monthly_revenue: float = 2_400_000.0
    """Revenue per month. The article's script takes it and never uses it; kept for parity."""
    avg_incident_cost: float = 2_100.0
    """Lost revenue per rollback incident, in dollars."""
    oncall_hourly_rate: float = 85.0
    """Cost of an on-call engineer's hour, in dollars."""
    cloud_monthly_spend: float = 45_000.0
    """Cloud bill per month, in dollars."""
    deployment_frequency: int = 120
    """Deployments per month (the article's prose says 120+ per *week*; the script uses month)."""
    static_rollback_rate: float = 0.23
    """Share of static-canary deployments rolled back."""
    static_rollback_minutes: float = 8.4
    """Minutes of on-call time per static rollback."""
    static_false_positive_rate: float = 0.31
    """Share of static deployments rolled back for nothing."""
    overprovisioning_share: float = 0.18
    """Share of the cloud bill wasted on safety buffers with static canaries."""
    dynamic_rollback_rate: float = 0.025
    """Share of latency-driven deployments rolled back."""
    dynamic_rollback_minutes: float = 1.2
    """Minutes of on-call time per automated rollback."""
    dynamic_false_positive_rate: float = 0.04
    """Share of latency-driven deployments rolled back for nothing."""
    right_sizing_share: float = 0.12
    """Share of the cloud bill saved by capacity validated in production."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int | float) or value != value or value < 0:
                raise ConfigError(f"{f.name.replace('_', '-')} must be a number >= 0, not {value!r}")
            if f.name in FRACTIONS and value > 1:
                raise ConfigError(f"{f.name.replace('_', '-')} is a fraction between 0 and 1, not {value!r}")

    def but(self, **changes: Any) -> CostInputs:
        """A copy with ``changes`` applied (``None`` values ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


@dataclass(frozen=True, slots=True)
class CostReport:
    """The script's outputs, rounded to the cent as it prints them."""

    inputs: CostInputs
    baseline_rollback_impact: float
    overprovisioning_waste: float
    baseline_total: float
    static_false_positives: int
    dynamic_rollback_impact: float
    right_sizing_savings: float
    dynamic_total: float
    dynamic_false_positives: int
    net_savings: float
    rollback_reduction_percent: float
    false_positives_eliminated: int

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["inputs"] = asdict(self.inputs)
        return out


def _rollback_cost(freq: int, rate: float, incident: float, minutes: float, hourly: float) -> float:
    return freq * rate * (incident + (minutes / 60 * hourly))


def compute(inputs: CostInputs) -> CostReport:
    """The article's ``run_simulation``, without the printing."""
    i = inputs
    base_rb = _rollback_cost(
        i.deployment_frequency, i.static_rollback_rate, i.avg_incident_cost,
        i.static_rollback_minutes, i.oncall_hourly_rate,
    )  # fmt: skip
    waste = i.cloud_monthly_spend * i.overprovisioning_share
    dyn_rb = _rollback_cost(
        i.deployment_frequency, i.dynamic_rollback_rate, i.avg_incident_cost,
        i.dynamic_rollback_minutes, i.oncall_hourly_rate,
    )  # fmt: skip
    right_sizing = i.cloud_monthly_spend * i.right_sizing_share
    baseline_total = base_rb + waste
    savings = baseline_total - dyn_rb + right_sizing
    reduction = (base_rb - dyn_rb) / base_rb * 100 if base_rb else 0.0
    fp_static = int(i.deployment_frequency * i.static_false_positive_rate)
    fp_dynamic = int(i.deployment_frequency * i.dynamic_false_positive_rate)
    return CostReport(
        inputs=i,
        baseline_rollback_impact=round(base_rb, 2),
        overprovisioning_waste=round(waste, 2),
        baseline_total=round(baseline_total, 2),
        static_false_positives=fp_static,
        dynamic_rollback_impact=round(dyn_rb, 2),
        right_sizing_savings=round(right_sizing, 2),
        dynamic_total=round(dyn_rb, 2),
        dynamic_false_positives=fp_dynamic,
        net_savings=round(savings, 2),
        rollback_reduction_percent=round(reduction, 1),
        false_positives_eliminated=fp_static - fp_dynamic,
    )
