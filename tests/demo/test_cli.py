"""`canarypilot demo` flags: help, and one clear line for bad input (no run starts)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from canarypilot.cli import app


def test_help_lists_the_flags_and_the_exit_codes() -> None:
    result = CliRunner().invoke(app, ["demo", "--help"])
    assert result.exit_code == 0
    for flag in ("--scenario", "--duration", "--no-live", "--state-dir", "--report", "--fast", "--backend"):
        assert flag in result.output
    assert "5" in result.output and "expected outcome" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scenario", "nope"], "unknown scenario 'nope'"),
        (["--backend", "k8s"], "unknown --backend 'k8s'"),
        (["--duration", "5"], "between 30 and 3600"),
        (["--rps", "5"], "between 100 and 2000"),
    ],
)
def test_bad_flags_exit_2_with_one_line_and_no_traceback(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["demo", *args])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_report_path_that_is_a_directory_is_refused_before_anything_starts(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["demo", "--report", str(tmp_path)])
    assert result.exit_code == 2
    assert "is a directory" in result.output
    assert len(result.output.strip().splitlines()) == 1
