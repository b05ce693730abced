"""Settings and rollout files as a careless user or an attacker writes them: every one is
refused with one line naming the key (exit 2), never accepted with a safeguard off and
never an "internal error".

Each case reproduces a defect of issue 12 that once got through.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from canarypilot import ConfigError, load_settings
from canarypilot.cli import app
from canarypilot.policy.documents import MAX_DEPTH, load_yaml
from canarypilot.rollout.config import parse_rollout_file

runner = CliRunner()

ROLLOUT = {
    "name": "payment-api",
    "target": {"service": "payment-api"},
    "router": {"type": "haproxy", "runtime_api": "/run/haproxy/admin.sock", "backend": "app"},
    "metrics": {"type": "prometheus", "url": "http://prometheus:9090"},
}


def settings_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "settings.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "named"),
    [
        # Defect 2: an empty schedule was accepted and crashed the controller after traffic moved.
        ("rollout: {pauses_seconds: []}", "rollout.pauses_seconds"),
        ("rollout: {pauses_seconds: [60, -5]}", "rollout.pauses_seconds.1"),
        ("rollout: {pauses_seconds: [60, 0]}", "rollout.pauses_seconds.1"),
        # Defect 7: out-of-range values switched safeguards off.
        ("slo: {max_error_delta: 1.5}", "slo.max_error_delta"),
        ("slo: {max_latency_delta: .inf}", "slo.max_latency_delta"),
        ("slo: {max_sample_age_seconds: .nan}", "slo.max_sample_age_seconds"),
        ("slo: {max_error_delta: true}", "slo.max_error_delta"),
        ("breaker: {consecutive_violations: true}", "breaker.consecutive_violations"),
        ("prometheus: {retries: 1000000000}", "prometheus.retries"),
        ("rollout: {router_retries: 1000000000}", "rollout.router_retries"),
        # Defect 8: a port out of range was an internal error when the first query ran.
        ("prometheus: {url: 'http://prometheus:99999'}", "prometheus.url"),
        ("prometheus: {url: 'http://prometheus:port'}", "prometheus.url"),
    ],
)
def test_out_of_range_settings_are_refused_naming_the_key(tmp_path: Path, text: str, named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(settings_file(tmp_path, text), environ={})
    assert f"{named}:" in str(caught.value)


def test_booleans_stay_booleans_and_numbers_numbers(tmp_path: Path) -> None:
    s = load_settings(settings_file(tmp_path, "breaker: {conclusive_at_once: false}"), environ={})
    assert s.breaker.conclusive_at_once is False
    env = {"CANARYPILOT_SLO__MAX_ERROR_DELTA": "0.05", "CANARYPILOT_ROLLOUT__PAUSES_SECONDS": "[30, 45]"}
    s = load_settings(environ=env)
    assert s.slo.max_error_delta == 0.05 and s.rollout.pauses_seconds == [30, 45]


def test_a_duplicate_key_is_refused_with_its_line(tmp_path: Path) -> None:
    text = "slo:\n  max_error_delta: 0.02\n  max_error_delta: 0.9\n"
    with pytest.raises(ConfigError, match=r"settings.yaml:3: invalid YAML: duplicate key 'max_error_delta'"):
        load_settings(settings_file(tmp_path, text), environ={})
    with pytest.raises(ConfigError, match="duplicate key 'name'"):
        parse_rollout_file(yaml.safe_dump(ROLLOUT) + "name: other\n")


def test_merge_keys_are_not_duplicates() -> None:
    text = "base: &base {a: 1, b: 2}\nover:\n  <<: *base\n  b: 3\n"
    assert load_yaml(text, "t")["over"] == {"a": 1, "b": 3}


@pytest.mark.parametrize("opener", ["[", "{a: ", "- "])
def test_yaml_nested_50000_deep_is_a_config_error_not_a_crash(opener: str) -> None:
    text = opener * 50_000
    started = time.monotonic()
    with pytest.raises(ConfigError, match=f"nested more than {MAX_DEPTH} levels"):
        load_yaml(text, "deep.yaml")
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("command", "content"),
    [
        (["analyze", "--service", "api", "--config"], b"slo:\n  max_latency_delta: \xff\xfe0.2\n"),
        (["analyze", "--service", "api", "--config"], b"[" * 50_000),
        (["rollout", "--config"], b"name: \xffbad\n"),
        (["rollout", "--config"], b"[" * 50_000),
        (["preflight"], b"[" * 50_000),
    ],
)
def test_unreadable_files_exit_2_with_one_line(tmp_path: Path, command: list[str], content: bytes) -> None:
    path = tmp_path / "input.yaml"
    path.write_bytes(content)
    result = runner.invoke(
        app, [*command, str(path), *(["--state-dir", str(tmp_path / "s")] * (command[0] == "rollout"))]
    )
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "internal error" not in lines[0], result.stderr
    assert str(path) in lines[0]


def test_a_bad_port_in_the_prometheus_flag_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["analyze", "--service", "api", "--prometheus", "http://127.0.0.1:99999"])
    assert result.exit_code == 2, result.output
    assert "port" in result.stderr and "internal error" not in result.stderr
