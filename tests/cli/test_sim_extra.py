"""numpy and matplotlib are the `sim` extra: without them the service's commands still run,
and the simulator's say in one line which extra to install."""

from __future__ import annotations

import subprocess
import sys

import pytest

import canarypilot

#: Runs the CLI in a fresh interpreter where numpy and matplotlib cannot be imported.
WITHOUT_SIM = (
    "import sys\n"
    "for name in ('numpy', 'matplotlib'):\n"
    "    sys.modules[name] = None\n"
    "from canarypilot.cli import main\n"
    "main(sys.argv[1:])\n"
)


def run_without_sim(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_SIM, *argv], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    "argv",
    [
        ("simulate", "latency-regression"),
        ("bench", "--seeds", "1"),
        ("demo", "--backend", "embedded"),
    ],
)
def test_the_simulator_commands_name_the_extra_to_install(argv: tuple[str, ...]) -> None:
    ran = run_without_sim(*argv)
    assert ran.returncode == 2
    lines = ran.stderr.strip().splitlines()
    assert len(lines) == 1, ran.stderr
    assert lines[0].startswith(f"canarypilot: error: `canarypilot {argv[0]}` needs ")
    assert "install canarypilot[sim]" in lines[0]


def test_the_service_commands_run_without_the_simulator() -> None:
    rendered = run_without_sim("render", "argo", "--service", "web", "--image", "web:2")
    assert rendered.returncode == 0, rendered.stderr
    assert f"image: canarypilot:{canarypilot.__version__}" in rendered.stdout
    for command in ("serve", "analyze", "rollout"):
        helped = run_without_sim(command, "--help")
        assert helped.returncode == 0, helped.stderr
    imported = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys\nsys.modules['numpy'] = sys.modules['matplotlib'] = None\n"
            "import canarypilot.service.app, canarypilot.rollout.controller, canarypilot.render.argo",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert imported.returncode == 0, imported.stderr
