"""The app's answers, in process: status mapping, gate, auth, limits, metrics.

These use the shipped ``StaticMetrics`` fake behind httpx's ASGI transport; the same
paths over real sockets and a real Prometheus are in test_serve_live.py.
"""

from __future__ import annotations

import httpx
import pytest

from canarypilot._exceptions import QueryError
from canarypilot.metrics.static import StaticMetrics
from canarypilot.model import Target, VersionStats
from canarypilot.policy import Settings
from canarypilot.service import create_app

STABLE = VersionStats("v1-stable", 0.200, 0.001, 100_000)


def client(
    canary: VersionStats, *, token: str | None = None, **service: object
) -> tuple[httpx.AsyncClient, StaticMetrics]:
    provider = StaticMetrics(STABLE, canary)
    settings = Settings().merged({"service": {"cache_ttl_seconds": 0, **service}})
    app = create_app(provider, settings, token=token)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test"), provider


def canary(
    p99: float | None = 0.200, errors: float | None = 0.001, requests: float | None = 5_000
) -> VersionStats:
    return VersionStats("v2-canary", p99, errors, requests)


@pytest.mark.parametrize(
    ("version", "weight", "target", "status", "gate"),
    [
        # the ladder's rule: from 20 % the growth cap is 40 %, the safe weight ~43 %
        (canary(), 20, 35, "proceed", "pass"),
        (canary(), 20, 75, "proceed", "wait"),
        # 100 % is taken from a weight whose cap covers it, once shown within the SLO ...
        (canary(requests=20_000), 50, 100, "proceed", "pass"),
        # ... and not on a thin sample, however good its point estimate
        (canary(requests=100), 75, 100, "proceed", "wait"),
        (canary(errors=0.08), 20, 35, "rollback", "fail"),
        (VersionStats("v2-canary"), 20, 35, "hold", "wait"),  # no series at all
    ],
)
async def test_the_gate_gives_the_controllers_verdict_for_argos_next_rung(
    version: VersionStats, weight: int, target: int, status: str, gate: str
) -> None:
    http, _ = client(version)
    async with http:
        params = {"service": "api", "weight": str(weight), "target_weight": str(target)}
        answer = await http.get("/analyze", params=params)
    assert answer.status_code == 200
    body = answer.json()
    assert (body["status"], body["gate"], body["target_weight"]) == (status, gate, target)
    assert body["step"]["weight"] == weight
    if status != "proceed":
        assert body["weight"] in (None, 0.0)


async def test_without_a_target_weight_the_answer_is_the_analyze_json() -> None:
    http, _ = client(canary())
    async with http:
        body = (await http.post("/analyze", json={"service": "api", "weight": 20})).json()
    assert "gate" not in body
    assert body["status"] == "proceed" and body["weight"] == body["safe_weight"] and body["service"] == "api"
    assert set(body) >= {
        "status",
        "safe_weight",
        "latency_delta",
        "error_delta",
        "latency_bound",
        "error_bound",
        "evidence",
        "canary",
        "stable",
        "reasons",
        "step",
    }


async def test_metrics_unavailable_is_503_and_never_a_weight() -> None:
    http, provider = client(VersionStats("v2-canary", 0.2, 0.001, 1_000))
    provider.online = False
    async with http:
        answer = await http.get("/analyze", params={"service": "api"})
        page = (await http.get("/metrics")).text
        health = await http.get("/healthz")
    assert answer.status_code == 503
    assert answer.json()["status"] == "error" and "weight" not in answer.json()
    assert 'canarypilot_backend_errors_total{kind="unavailable"} 1.0' in page
    assert health.status_code == 503


async def test_a_rejected_query_is_502() -> None:
    class Rejecting(StaticMetrics):
        async def history(self, target: Target, **_: object) -> object:  # type: ignore[override]
            raise QueryError("Prometheus rejected the query (bad_data: parse error)", query="up{")

    provider = Rejecting(STABLE, STABLE)
    app = create_app(provider, Settings())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        answer = await http.get("/analyze", params={"service": "api"})
    assert answer.status_code == 502
    assert "rejected" in answer.json()["error"]


@pytest.mark.parametrize(
    ("request_args", "field"),
    [
        ({"params": {}}, "service"),
        ({"params": {"service": "api", "extra": "1"}}, "extra"),
        ({"params": [("service", "api"), ("service", "other")]}, "service"),
        ({"params": {"service": "api", "target_weight": "101"}}, "target_weight"),
        ({"params": {"service": "api", "target_weight": "nan"}}, "target_weight"),
        ({"params": {"service": "api", "stable_version": "x y"}}, "stable_version"),
    ],
)
async def test_bad_query_parameters_are_422_naming_the_field(
    request_args: dict[str, object], field: str
) -> None:
    http, provider = client(STABLE)
    async with http:
        answer = await http.get("/analyze", **request_args)  # type: ignore[arg-type]
    assert answer.status_code == 422
    assert answer.json()["field"] == field
    assert provider.calls == 0  # nothing reached the metrics backend


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"[1, 2]", "body"),
        (b"{not json", "body"),
        (b'{"service": 7}', "service"),
        (b'{"service": "api", "target_weight": true}', "target_weight"),
        (b'{"service": "api", "weight": 0}', "weight"),
        (b'{"service": "api", "since": "yesterday"}', "since"),
        # Issue 12, defect 5: these three were 500s (AssertionError, OverflowError, RecursionError).
        (b'{"service": null}', "service"),
        (b'{"service": "api", "target_weight": 1' + b"0" * 400 + b"}", "target_weight"),
        (b"[" * 8_000 + b"]" * 8_000, "body"),
    ],
)
async def test_bad_bodies_are_422_naming_the_field(body: bytes, field: str) -> None:
    http, _ = client(STABLE, max_body_bytes=32_768)
    async with http:
        answer = await http.post("/analyze", content=body)
    assert answer.status_code == 422 and answer.json()["field"] == field


async def test_argo_string_arguments_are_accepted_in_json_bodies() -> None:
    http, _ = client(canary())
    async with http:
        answer = await http.post("/analyze", json={"service": "api", "weight": "20", "target_weight": "35"})
    assert answer.json()["gate"] == "pass"


async def test_bodies_over_the_limit_are_413() -> None:
    http, _ = client(STABLE, max_body_bytes=256)
    async with http:
        answer = await http.post("/analyze", content=b'{"service": "api", "pad": "' + b"x" * 300 + b'"}')
    assert answer.status_code == 413


async def test_the_token_is_compared_whole() -> None:
    http, _ = client(VersionStats("v2-canary", 0.2, 0.001, 1_000), token="tok")
    async with http:
        for header in ("", "Bearer", "Bearer to", "Bearer tokk", "bearer tok", "Bearer tok "):
            answer = await http.get("/analyze", params={"service": "api"}, headers={"Authorization": header})
            assert answer.status_code == 401, header
            assert answer.headers["www-authenticate"] == "Bearer"
        ok = await http.get("/analyze", params={"service": "api"}, headers={"Authorization": "Bearer tok"})
    assert ok.status_code == 200


async def test_unknown_paths_and_methods_answer_json() -> None:
    http, _ = client(STABLE)
    async with http:
        missing = await http.get("/nope")
        wrong = await http.delete("/analyze")
    assert missing.status_code == 404 and missing.json()["status"] == "error"
    assert wrong.status_code == 405 and wrong.json()["status"] == "error"


async def test_per_service_gauges_are_bounded() -> None:
    http, _ = client(canary(), max_tracked_services=2)
    async with http:
        for name in ("a1", "b1", "c1"):
            await http.get("/analyze", params={"service": name, "weight": "20"})
        page = (await http.get("/metrics")).text
    assert 'canary_safe_weight{service="b1"} ' in page
    assert 'service="c1"' not in page
    assert "canarypilot_untracked_services_total 1.0" in page
    assert 'canarypilot_decisions_total{status="proceed"} 3.0' in page
