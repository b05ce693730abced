"""`canarypilot roi`: the article's numbers to the cent, every input a flag, measured rates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from canarypilot._exceptions import ConfigError
from canarypilot.cli import app
from canarypilot.roi import CostInputs, compute, read_bench

ARTICLE_OUTPUT = """=== Deployment Strategy ROI Analysis ===
Baseline Monthly Cost: $66,388.44
Dynamic Strategy Cost: $6,305.10
Right-Sizing Savings: $5,400.00
Net Monthly Savings: $65,483.34
Rollback Reduction: 89.2%
False Positives Eliminated: 33
"""


def test_defaults_reproduce_the_article_exactly() -> None:
    r = compute(CostInputs())
    assert r.baseline_total == 66_388.44
    assert r.dynamic_total == 6_305.10
    assert r.right_sizing_savings == 5_400.00
    assert r.net_savings == 65_483.34
    assert r.rollback_reduction_percent == 89.2
    assert r.false_positives_eliminated == 33
    # The parts: 27.6 rollbacks at $2,100 + 8.4 min of on-call, and 18% of $45,000 wasted.
    assert r.baseline_rollback_impact == 58_288.44 and r.overprovisioning_waste == 8_100.00
    assert (r.static_false_positives, r.dynamic_false_positives) == (37, 4)


def test_cli_prints_the_article_lines() -> None:
    result = CliRunner().invoke(app, ["roi"])
    assert result.exit_code == 0
    assert result.stdout.startswith(ARTICLE_OUTPUT)


def test_every_input_is_a_flag() -> None:
    result = CliRunner().invoke(
        app, ["roi", "--deployment-frequency", "480", "--avg-incident-cost", "0", "-f", "json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    # Without incident costs only on-call minutes remain: 480 * 0.23 * 8.4/60 * 85.
    assert data["baseline_rollback_impact"] == pytest.approx(480 * 0.23 * 8.4 / 60 * 85, abs=0.01)
    assert data["false_positives_eliminated"] == int(480 * 0.31) - int(480 * 0.04)
    import typer.main

    command = typer.main.get_command(app).commands["roi"]  # type: ignore[attr-defined]
    flags = {opt for param in command.params for opt in param.opts}
    for name in CostInputs.__dataclass_fields__:
        assert "--" + name.replace("_", "-") in flags


def test_monthly_revenue_changes_nothing_as_in_the_article() -> None:
    assert compute(CostInputs(monthly_revenue=1.0)).net_savings == compute(CostInputs()).net_savings


def bench_file(tmp_path: Path, static: tuple[float, float], mine: tuple[float, float]) -> Path:
    def row(false_rate: float, detection: float) -> dict[str, float | int]:
        return {
            "false_rollback_rate": false_rate,
            "detection_rate": detection,
            "healthy_runs": 100,
            "bad_runs": 50,
        }

    path = tmp_path / "bench.json"
    path.write_text(json.dumps({"summary": {"static": row(*static), "canarypilot": row(*mine)}}))
    return path


def test_from_bench_uses_measured_rates(tmp_path: Path) -> None:
    path = bench_file(tmp_path, static=(0.20, 1.0), mine=(0.01, 1.0))
    result = CliRunner().invoke(
        app, ["roi", "--from-bench", str(path), "--bad-release-rate", "0.1", "-f", "json"]
    )
    assert result.exit_code == 0, result.output
    inputs = json.loads(result.stdout)["inputs"]
    assert inputs["static_rollback_rate"] == pytest.approx(0.1 * 1.0 + 0.9 * 0.20)
    assert inputs["dynamic_rollback_rate"] == pytest.approx(0.1 * 1.0 + 0.9 * 0.01)
    assert inputs["static_false_positive_rate"] == 0.20 and inputs["dynamic_false_positive_rate"] == 0.01
    # A flag still wins over a measured rate.
    forced = CliRunner().invoke(
        app, ["roi", "--from-bench", str(path), "--dynamic-false-positive-rate", "0.5", "-f", "json"]
    )
    assert json.loads(forced.stdout)["inputs"]["dynamic_false_positive_rate"] == 0.5
    table = CliRunner().invoke(app, ["roi", "--from-bench", str(path)]).stdout
    assert "rates measured by" in table


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "not a JSON bench report"),
        ("[]", "no 'summary' object"),
        (
            '{"summary": {"static": {"false_rollback_rate": 0.1, "detection_rate": 1}}}',
            "no results for strategy",
        ),
        (
            '{"summary": {"static": {"false_rollback_rate": 2, "detection_rate": 1}, "canarypilot": {}}}',
            "summary.static.false_rollback_rate is 2",
        ),
    ],
)
def test_bad_bench_reports_are_refused(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bench.json"
    path.write_text(content)
    with pytest.raises(ConfigError) as caught:
        read_bench(path)
    assert message in str(caught.value)
    result = CliRunner().invoke(app, ["roi", "--from-bench", str(path)])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1


def test_out_of_range_inputs_are_refused() -> None:
    with pytest.raises(ConfigError, match="static-rollback-rate is a fraction"):
        CostInputs(static_rollback_rate=1.5)
    with pytest.raises(ConfigError, match="cloud-monthly-spend must be a number >= 0"):
        CostInputs(cloud_monthly_spend=-1)
    result = CliRunner().invoke(app, ["roi", "--bad-release-rate", "0.1"])
    assert result.exit_code == 2 and "only applies with --from-bench" in result.stderr
