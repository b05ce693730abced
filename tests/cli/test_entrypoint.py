"""The console entry point: usage errors are one line and exit 2, like every other error."""

from __future__ import annotations

import pytest

from canarypilot.cli import main


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as stop:
        main(argv)
    out, err = capsys.readouterr()
    code = stop.value.code
    return (code if isinstance(code, int) else 1), out, err


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["bench", "--seeds", "0"], "--seeds"),
        (["roi", "--no-such-flag"], "No such option: --no-such-flag"),
        (["analyze", "--service", "api", "--format", "xml"], "'xml' is not one of"),
        (["no-such-command"], "No such command"),
    ],
)
def test_usage_errors_are_one_line_with_exit_2(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(argv, capsys)
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("canarypilot: error: ") and needle in lines[0]
    assert "--help" in lines[0]


def test_success_exits_0_and_prints(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["--version"], capsys)
    assert code == 0 and out.startswith("canarypilot ")


def test_command_exit_codes_pass_through(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["analyze", "--service", "api", "--prometheus", "ftp://x"], capsys)
    assert code == 2 and "http://" in err


def test_command_list_shows_one_sentence_each(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["--help"], capsys)
    assert code == 0
    assert "analyze" in out and "rollout" in out
    assert "Exit codes" not in out  # the full text stays on `canarypilot COMMAND --help`


def test_a_usage_error_raised_inside_a_command_stays_a_usage_error() -> None:
    # typer raises its own bundled click's exceptions; friendly_errors once caught only the
    # separate click package's, and turned a typer.BadParameter into "internal error", exit 1.
    import typer
    from typer.testing import CliRunner

    from canarypilot.cli.common import friendly_errors

    probe = typer.Typer()

    @probe.command()
    def check(value: str) -> None:
        with friendly_errors():
            raise typer.BadParameter(f"{value!r} is not a weight", param_hint="--weight")

    result = CliRunner().invoke(probe, ["heavy"])
    assert result.exit_code == 2
    assert "'heavy' is not a weight" in result.output
    assert "internal error" not in result.output
