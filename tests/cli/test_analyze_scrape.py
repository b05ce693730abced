"""`canarypilot analyze` without Prometheus: it scrapes real loopback pods for one window.

Each test starts a stable and a canary pod (tests/cli/pods.py), runs the real
command with ``--scrape`` over a 3-second window scraped every 0.5 s, and
checks the decision a user would act on: its exit code and its JSON.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner

from canarypilot.cli import app
from canarypilot.local.processes import free_port
from tests.cli.pods import Pod, Traffic

SERVICE = "checkout"
FAST_WINDOW = ("--window", "3s", "--scrape-interval", "0.5")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("CANARYPILOT_"):
            monkeypatch.delenv(key)


@contextmanager
def pods(stable: Traffic, canary: Traffic) -> Iterator[tuple[Pod, Pod]]:
    a = Pod("v1-stable", stable)
    try:
        b = Pod("v2-canary", canary)
        try:
            yield a, b
        finally:
            b.stop()
    finally:
        a.stop()


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["analyze", "--service", SERVICE, *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.integration
def test_a_healthy_pair_proceeds_with_the_requests_both_served() -> None:
    with pods(Traffic(), Traffic()) as (stable, canary):
        code, out, err = run(
            "--scrape", f"v1-stable={stable.address}", "--scrape", f"v2-canary={canary.address}",
            *FAST_WINDOW, "--format", "json",
        )  # fmt: skip
    body = json.loads(out)
    assert (code, body["status"], err) == (0, "proceed", "")
    assert body["latency_delta"] == pytest.approx(0.0, abs=0.05)
    # 50 requests every 50 ms for 3 s: about 3000 per version (the pods' threads may lag a little).
    assert 1500 < body["canary"]["requests"] < 3600 and 1500 < body["stable"]["requests"] < 3600


@pytest.mark.integration
def test_a_slow_canary_rolls_back(tmp_path: Path) -> None:
    with pods(Traffic(), Traffic(fast=0.06, slow=0.6)) as (stable, canary):
        config = tmp_path / "settings.yaml"
        config.write_text(
            f"scrape:\n  targets:\n    v1-stable: [{stable.address}]\n    v2-canary: [{canary.address}]\n"
        )
        code, out, _ = run("--config", str(config), *FAST_WINDOW, "--format", "json")
    body = json.loads(out)
    assert (code, body["status"], body["weight"]) == (4, "rollback", 0)
    assert body["latency_delta"] > 1.0


@pytest.mark.integration
def test_an_unreachable_canary_holds_and_is_named_on_stderr() -> None:
    with pods(Traffic(), Traffic()) as (stable, _):
        dead = f"127.0.0.1:{free_port()}"
        code, out, err = run(
            "--scrape", f"v1-stable={stable.address}", "--scrape", f"v2-canary={dead}",
            *FAST_WINDOW, "--format", "json",
        )  # fmt: skip
    body = json.loads(out)
    assert (code, body["status"], body["weight"]) == (3, "hold", None)
    assert f"v2-canary at http://{dead}/metrics" in err and "scrapes failed" in err


@pytest.mark.integration
def test_no_target_answering_is_a_backend_failure() -> None:
    code, out, err = run("--scrape", f"v1-stable=127.0.0.1:{free_port()}", *FAST_WINDOW)
    assert code == 1 and out == ""
    assert "error: no scrape target answered" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "pass --prometheus URL (or set prometheus.url), or --scrape VERSION=HOST:PORT"),
        (("--scrape", "127.0.0.1:9"), "expected VERSION=HOST:PORT"),
        (("--scrape", "v1=127.0.0.1:9", "--window", "11m"), "too long to scrape while you wait"),
        (("--scrape", "v1=127.0.0.1:9", "--window", "20s"), "fewer than two scrapes every 15s"),
        (("--scrape", 'v1"}=127.0.0.1:9', *FAST_WINDOW), "invalid version"),
        (("--scrape", "v1=ftp://x", *FAST_WINDOW), "is not host:port or an http(s) URL"),
        (("--scrape", "v1=127.0.0.1:9", "--at", "1700000000"), "--at needs Prometheus"),
    ],
)
def test_bad_scrape_input_is_one_line_and_exit_2(args: tuple[str, ...], message: str) -> None:
    code, out, err = run(*args)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("canarypilot: error: ")
    assert message in lines[0]


def test_serve_without_prometheus_needs_a_service() -> None:
    result = CliRunner().invoke(app, ["serve", "--port", "0", "--scrape", "v1-stable=127.0.0.1:9"])
    assert result.exit_code == 2 and "pass --service NAME" in result.stderr


def test_serve_without_any_source_names_both_options() -> None:
    result = CliRunner().invoke(app, ["serve", "--port", "0"])
    assert result.exit_code == 2
    assert "--prometheus URL" in result.stderr and "--scrape VERSION=HOST:PORT" in result.stderr
