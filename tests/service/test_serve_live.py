"""`canarypilot serve` end to end: a real Prometheus, the real command, real sockets."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from canarypilot.local.processes import free_port
from canarypilot.local.prometheus import LocalPrometheus
from tests.service.live import Served, live_prometheus, prometheus_queries, scenarios, serve

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPrometheus]:
    many = [f"svc-{i:03d}" for i in range(40)]
    with live_prometheus(tmp_path_factory.mktemp("prom"), extra_services=many) as running:
        yield running


@pytest.fixture(scope="module")
def served(prom: LocalPrometheus, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve(prom.url, tmp_path_factory.mktemp("serve")) as running:
        yield running


def test_each_canary_gets_the_decision_its_data_calls_for(served: Served) -> None:
    data = scenarios(0.0)
    healthy = httpx.get(f"{served.url}/analyze", params={"service": "healthy"}).json()
    assert healthy["status"] == "proceed" and healthy["weight"] == healthy["safe_weight"] > 5
    # No step start given: the canary has served 5 of every 25 requests since the data
    # began, so the step is all of it, at 20 %.
    assert healthy["step"]["weight"] == 20.0
    canary, stable = healthy["canary"]["requests"], healthy["stable"]["requests"]
    assert canary / (canary + stable) == pytest.approx(0.2, rel=1e-6)
    assert canary >= data["healthy"].requests("v2-canary", 600)

    regressed = httpx.get(f"{served.url}/analyze", params={"service": "regressed", "target_weight": "20"})
    body = regressed.json()
    assert regressed.status_code == 200
    assert body["status"] == "rollback" and body["gate"] == "fail" and body["target_weight"] == 20.0
    assert [v["kind"] for v in body["violations"]] == ["latency"]

    errors = httpx.post(f"{served.url}/analyze", json={"service": "error-regressed"}).json()
    assert errors["status"] == "rollback"
    assert errors["error_delta"] == pytest.approx(0.05, abs=1e-6)
    assert [v["kind"] for v in errors["violations"]] == ["errors"]

    ghost = httpx.get(f"{served.url}/analyze", params={"service": "ghost", "target_weight": 10}).json()
    assert ghost["status"] == "hold" and ghost["weight"] is None and ghost["gate"] == "wait"


async def test_identical_concurrent_requests_cost_one_set_of_queries(
    served: Served, prom: LocalPrometheus
) -> None:
    before = prometheus_queries(prom)
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as client:
        answers = await asyncio.gather(
            *(client.get("/analyze", params={"service": "svc-000"}) for _ in range(100))
        )
    assert [a.json()["status"] for a in answers] == ["proceed"] * 100
    # one range query per signal (buckets, requests, errors), the newest sample's time, and
    # once the raw samples that measure the scrape interval
    assert prometheus_queries(prom) - before == 5


async def test_many_services_in_one_interval_cost_a_handful_of_queries(
    served: Served, prom: LocalPrometheus
) -> None:
    before = prometheus_queries(prom)
    names = [f"svc-{i:03d}" for i in range(1, 40)]
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as client:
        answers = await asyncio.gather(*(client.get("/analyze", params={"service": n}) for n in names))
    assert [a.json()["service"] for a in answers] == names
    assert {a.json()["status"] for a in answers} == {"proceed"}
    spent = prometheus_queries(prom) - before
    # Five queries per batch (four, and the scrape interval of its new services), and the
    # requests arrive within a few batching windows.
    assert spent % 5 == 0 and spent <= 5 * 6, spent


def test_hostile_input_is_refused_with_json_naming_the_field(served: Served) -> None:
    cases = [
        ({"service": "healthy", "window": "1h"}, "window"),
        ({"service": 'a"} or vector(1)'}, "service"),
        ({"service": "healthy", "target_weight": "lots"}, "target_weight"),
        ({"service": "healthy", "canary_version": "v1-stable"}, "canary_version"),
    ]
    for params, field in cases:
        answer = httpx.get(f"{served.url}/analyze", params=params)
        assert answer.status_code == 422, params
        assert answer.json()["field"] == field
    big = httpx.post(f"{served.url}/analyze", content=b'{"service": "' + b"a" * 40_000 + b'"}')
    assert big.status_code == 413 and big.json()["status"] == "error"
    not_json = httpx.post(f"{served.url}/analyze", content=b"service=healthy")
    assert not_json.status_code == 422 and not_json.json()["field"] == "body"
    assert "Traceback" not in served.log()


def test_health_metrics_and_request_ids(served: Served) -> None:
    httpx.get(f"{served.url}/analyze", params={"service": "healthy"})
    assert httpx.get(f"{served.url}/healthz").json()["status"] == "ready"
    assert httpx.get(f"{served.url}/livez").status_code == 200
    page = httpx.get(f"{served.url}/metrics").text
    assert 'canary_safe_weight{service="healthy"}' in page
    assert 'canary_latency_delta{service="regressed"}' in page
    assert "canarypilot_analysis_duration_seconds_bucket" in page
    answer = httpx.get(
        f"{served.url}/analyze", params={"service": "healthy"}, headers={"X-Request-ID": "argo-123"}
    )
    assert answer.headers["x-request-id"] == "argo-123"
    lines = [json.loads(line) for line in served.log().splitlines() if line.startswith("{")]
    mine = [line for line in lines if line.get("request_id") == "argo-123"]
    assert mine and mine[0]["status"] == 200 and mine[0]["service"] == "healthy"


def test_backend_failure_is_a_json_503_never_a_proceed(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with serve(dead, tmp_path) as down:
        answer = httpx.get(f"{down.url}/analyze", params={"service": "healthy"}, timeout=30)
        assert answer.status_code == 503
        body = answer.json()
        assert body["status"] == "error" and "weight" not in body
        assert int(answer.headers["retry-after"]) >= 1
        assert httpx.get(f"{down.url}/healthz", timeout=10).status_code == 503
        assert "canarypilot_backend_errors_total" in httpx.get(f"{down.url}/metrics").text


def test_bearer_token_is_required_when_configured(prom: LocalPrometheus, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token\n")
    with serve(prom.url, tmp_path, "--token-file", str(token_file)) as guarded:
        assert httpx.get(f"{guarded.url}/analyze", params={"service": "healthy"}).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert (
            httpx.get(f"{guarded.url}/analyze", params={"service": "healthy"}, headers=wrong).status_code
            == 401
        )
        right = {"Authorization": "Bearer s3cret-token"}
        answer = httpx.get(f"{guarded.url}/analyze", params={"service": "healthy"}, headers=right)
        assert answer.status_code == 200 and answer.json()["status"] == "proceed"
        assert httpx.get(f"{guarded.url}/livez").status_code == 200  # probes need no token
        assert "s3cret-token" not in guarded.log()


def test_sigterm_lets_in_flight_requests_finish(prom: LocalPrometheus, tmp_path: Path) -> None:
    config = tmp_path / "slow-batches.yaml"
    config.write_text("service:\n  batch_window_seconds: 1.0\n")
    with serve(prom.url, tmp_path, config=str(config)) as slow:
        port = int(slow.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            conn.sendall(b"GET /analyze?service=healthy HTTP/1.1\r\nHost: test\r\n\r\n")
            time.sleep(0.3)  # the request now waits in the 1 s batching window
            slow.process.send_signal(signal.SIGTERM)
            answer = b""
            while chunk := conn.recv(65536):
                answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        assert json.loads(body)["status"] == "proceed"
        # uvicorn re-raises SIGTERM once drained: the conventional "stopped by SIGTERM" status.
        assert slow.process.wait(10) == -signal.SIGTERM
        assert "Traceback" not in slow.log()


def test_unusable_flags_are_one_line_errors(tmp_path: Path) -> None:
    import subprocess
    import sys

    exe = str(Path(sys.executable).with_name("canarypilot"))
    missing = subprocess.run(
        [exe, "serve", "--prometheus", "http://127.0.0.1:9", "--token-file", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert missing.returncode == 2
    assert (
        missing.stderr.startswith("canarypilot: error: cannot read token file")
        and "Traceback" not in missing.stderr
    )
    no_url = subprocess.run(
        [exe, "serve"], capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin"}
    )
    assert no_url.returncode == 2 and "no Prometheus URL" in no_url.stderr
