"""`canarypilot operator`: help, the CRD it prints, and one-line errors with exit code 2."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from canarypilot.cli import app
from canarypilot.operator.crd import crd_yaml

runner = CliRunner()


def test_help_names_both_commands_and_the_exit_codes() -> None:
    answer = runner.invoke(app, ["operator", "--help"])
    assert answer.exit_code == 0
    assert "run" in answer.output and "crd" in answer.output
    run_help = runner.invoke(app, ["operator", "run", "--help"])
    assert run_help.exit_code == 0 and "Exit codes" in run_help.output


def test_crd_prints_the_generated_definition() -> None:
    answer = runner.invoke(app, ["operator", "crd"])
    assert answer.exit_code == 0
    assert answer.output == crd_yaml()


def test_a_renewal_not_shorter_than_the_lease_is_refused() -> None:
    answer = runner.invoke(app, ["operator", "run", "--lease-seconds", "5", "--renew-seconds", "5"])
    assert answer.exit_code == 2
    assert "--renew-seconds must be shorter" in answer.output
    assert "Traceback" not in answer.output


def test_a_missing_kubeconfig_is_one_line_and_exit_code_2(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    answer = runner.invoke(app, ["operator", "run", "--kubeconfig", str(missing)])
    assert answer.exit_code == 2
    assert f"cannot read kubeconfig {missing}" in answer.output
    assert len(answer.output.strip().splitlines()) == 1
