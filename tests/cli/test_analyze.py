"""`canarypilot analyze`: exit codes, the JSON a pipeline reads, one-line errors, settings layering.

The backend is a scripted Prometheus on loopback (tests/metrics/fault_server.py),
so each outcome is reached through real HTTP; the real-Prometheus runs are in
tests/integration/test_prometheus_analyze.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from canarypilot.cli import app
from canarypilot.local.processes import free_port
from tests.metrics.fault_server import SERVICE, Reply, ScriptedPrometheus
from tests.support.promdata import bucket_rows

AT = "1700000000"
TOKEN = "tok-0123456789-abcdef"


def answer_with(
    p99: tuple[str, str] = ("0.2", "0.2"), requests: tuple[str, str] = ("6000", "1500"), errors: str = "0"
) -> Callable[[str, float], bytes]:
    """Prometheus answers for (stable, canary) values."""

    def answer(query: str, at: float) -> bytes:
        if query.startswith("sum by (le,"):
            rows = [
                {"metric": {"job": SERVICE, "version": v, "le": le}, "value": [at, x]}
                for v, quantile in zip(("v1-stable", "v2-canary"), p99, strict=True)
                for le, x in bucket_rows(quantile)
            ]
            return json.dumps(
                {"status": "success", "data": {"resultType": "vector", "result": rows}}
            ).encode()
        if "timestamp(" in query:
            values = (str(at), str(at))
        elif "code" in query:
            values = (errors, errors)
        else:
            values = requests
        result = [
            {"metric": {"job": SERVICE, "version": v}, "value": [at, x]}
            for v, x in zip(("v1-stable", "v2-canary"), values, strict=True)
        ]
        return json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}}).encode()

    return answer


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("CANARYPILOT_"):
            monkeypatch.delenv(key)


@pytest.fixture
def server() -> Iterator[ScriptedPrometheus]:
    with ScriptedPrometheus() as s:
        yield s


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["analyze", *args], env=env)
    return result.exit_code, result.stdout, result.stderr


def analyze(url: str, *extra: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    return run("--service", SERVICE, "--prometheus", url, "--at", AT, *extra, env=env)


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got: {stderr!r}"
    assert lines[0].startswith("canarypilot: error: ")
    assert "Traceback" not in stderr
    return lines[0]


def test_proceed_exits_0_with_the_documented_json(server: ScriptedPrometheus) -> None:
    code, out, err = analyze(server.url, "--format", "json")
    assert code == 0 and err == ""
    body = json.loads(out)
    assert body["status"] == "proceed" and body["weight"] == 100.0
    assert body["latency_delta"] == 0.0 and body["error_delta"] == 0.0
    for side in ("canary", "stable"):
        assert set(body[side]) >= {"p99_seconds", "error_rate", "requests"}
    assert body["canary"] == {
        "version": "v2-canary",
        "p99_seconds": 0.25,
        "error_rate": 0.001,
        "requests": 3000,
    }
    assert isinstance(body["reasons"], list) and body["reasons"]


def test_hold_exits_3_with_null_weight() -> None:
    with ScriptedPrometheus(answer=answer_with(requests=("6000", "40"))) as server:
        code, out, _ = analyze(server.url, "--format", "json")
    body = json.loads(out)
    assert code == 3 and body["status"] == "hold" and body["weight"] is None
    assert any("served 40 requests" in r for r in body["reasons"])


def test_rollback_exits_4_with_weight_zero() -> None:
    with ScriptedPrometheus(answer=answer_with(p99=("0.2", "0.3"))) as server:
        code, out, _ = analyze(server.url, "--format", "json")
    body = json.loads(out)
    assert code == 4 and body["status"] == "rollback" and body["weight"] == 0
    assert body["latency_delta"] == pytest.approx(0.5)


def test_table_output_shows_the_decision_and_both_versions() -> None:
    with ScriptedPrometheus(answer=answer_with(p99=("0.2", "0.21"))) as server:
        code, out, _ = analyze(server.url)
    assert code == 0
    assert "PROCEED  weight 62.6%" in out
    assert "stable (v1-stable)" in out and "canary (v2-canary)" in out
    assert "+5.0%" in out and "210.0 ms" in out


def test_missing_service_is_a_usage_error() -> None:
    code, _, err = run("--prometheus", "http://127.0.0.1:9")
    assert code == 2 and "--service" in err


def test_hostile_service_name_is_refused_before_any_query(server: ScriptedPrometheus) -> None:
    code, out, err = run("--service", 'a"}or vector(1)', "--prometheus", server.url)
    assert code == 2 and out == ""
    assert "invalid service name" in one_error_line(err)
    assert server.seen == []


def test_no_prometheus_url_is_a_config_error() -> None:
    code, _, err = run("--service", SERVICE)
    assert code == 2 and "no Prometheus URL" in one_error_line(err)


def test_unreachable_prometheus_exits_1_with_one_line() -> None:
    code, out, err = analyze(f"http://127.0.0.1:{free_port()}", "--timeout", "0.5")
    assert code == 1 and out == ""
    assert "cannot reach" in one_error_line(err)


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (Reply(200, b"<!doctype html><title>Grafana</title>", "text/html"), "text/html"),
        (Reply(200, b'{"status":"success","da'), "not Prometheus JSON"),
        (Reply(400, b'{"status":"error","errorType":"bad_data","error":"parse error"}'), "query: "),
    ],
    ids=["html", "truncated", "rejected-query"],
)
def test_failing_backend_exits_1_with_one_line(reply: Reply, expected: str) -> None:
    with ScriptedPrometheus([reply]) as server:
        code, out, err = analyze(server.url)
    assert code == 1 and out == ""
    assert expected in one_error_line(err)


def test_bearer_token_never_reaches_stderr(tmp_path: Path) -> None:
    body = b'{"status":"error","errorType":"unauthorized","error":"invalid token"}'
    with ScriptedPrometheus([Reply(401, body)]) as server:
        code, _, err = analyze(server.url, env={"CANARYPILOT_PROMETHEUS__BEARER_TOKEN": TOKEN})
    assert server.seen[0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert code == 1 and "refused the credentials" in one_error_line(err)
    assert TOKEN not in err


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "canarypilot.yaml"
    path.write_text(text)
    return str(path)


def test_unknown_config_key_is_named(tmp_path: Path) -> None:
    config = write(tmp_path, "slo:\n  max_latency_deltaa: 0.2\n")
    code, _, err = analyze("http://127.0.0.1:9", "--config", config)
    assert code == 2 and "slo.max_latency_deltaa: unknown key" in one_error_line(err)


def test_wrong_config_value_is_named(tmp_path: Path) -> None:
    config = write(tmp_path, "query:\n  window: five minutes\n")
    code, _, err = analyze("http://127.0.0.1:9", "--config", config)
    assert code == 2 and "query.window" in one_error_line(err)


def test_unreadable_or_invalid_config_is_a_config_error(tmp_path: Path) -> None:
    code, _, err = analyze("http://127.0.0.1:9", "--config", str(tmp_path / "absent.yaml"))
    assert code == 2 and "cannot read config file" in one_error_line(err)
    code, _, err = analyze("http://127.0.0.1:9", "--config", write(tmp_path, "slo: [unclosed"))
    assert code == 2 and "canarypilot.yaml:1: invalid YAML" in err


def test_file_then_environment_then_flags(tmp_path: Path, server: ScriptedPrometheus) -> None:
    """The window reaches every query, so the queries show which source won."""
    config = write(tmp_path, f"prometheus:\n  url: {server.url}\nquery:\n  window: 10m\n")

    def window_used(*flags: str, env: dict[str, str] | None = None) -> str:
        server.seen.clear()
        code, _, err = run("--service", SERVICE, "--config", config, "--at", AT, *flags, env=env)
        assert code == 0, err
        return {q.split("[")[1].split("]")[0] for q in server.queries() if "[" in q}.pop()

    assert window_used() == "10m"
    assert window_used(env={"CANARYPILOT_QUERY__WINDOW": "2m"}) == "2m"
    assert window_used("--window", "1m", env={"CANARYPILOT_QUERY__WINDOW": "2m"}) == "1m"


def test_environment_alone_can_configure_the_url(server: ScriptedPrometheus) -> None:
    code, _, err = run("--service", SERVICE, "--at", AT, env={"CANARYPILOT_PROMETHEUS__URL": server.url})
    assert code == 0, err


def test_bad_environment_variable_is_named() -> None:
    code, _, err = analyze("http://127.0.0.1:9", env={"CANARYPILOT_SLO__MAX_ERROR_DELTA": "lots"})
    assert code == 2 and "CANARYPILOT_SLO__MAX_ERROR_DELTA" in one_error_line(err)


def test_thresholds_from_the_config_change_the_decision(tmp_path: Path) -> None:
    config = write(tmp_path, "slo:\n  max_latency_delta: 0.6\n")
    with ScriptedPrometheus(answer=answer_with(p99=("0.2", "0.3"))) as server:
        strict, _, _ = analyze(server.url)
        lenient, out, _ = analyze(server.url, "--config", config, "--format", "json")
    assert (strict, lenient) == (4, 0)
    assert json.loads(out)["weight"] == 14.5  # exp(-10 * 0.5) is below the 0.1 floor: 5 + 0.1 * 95


def test_versions_from_flags_reach_the_queries(server: ScriptedPrometheus) -> None:
    analyze(server.url, "--canary-version", "v3", "--stable-version", "v2")
    assert all('version=~"v2|v3"' in q for q in server.queries())


def test_at_accepts_iso_8601(server: ScriptedPrometheus) -> None:
    run("--service", SERVICE, "--prometheus", server.url, "--at", "2023-11-14T22:13:20Z")
    assert len(server.seen) == 4 and {s.at for s in server.seen} == {1_700_000_000.0}


def test_help_documents_the_exit_codes() -> None:
    result = CliRunner().invoke(app, ["analyze", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert "0 proceed, 3 hold, 4 rollback, 2 usage or configuration error, 1" in text
