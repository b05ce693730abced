"""The provider against a real loopback server that misbehaves: never ``proceed`` on a fault.

Each fault must end in ``MetricsUnavailable`` (retry later) or ``QueryError``
(give up), with a message naming the cause; a transient 500 is retried and the
analysis then succeeds.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable

import pytest

from canarypilot import MetricsUnavailable, QueryError, Settings, Status, Target, analyze
from canarypilot.local.processes import free_port
from canarypilot.metrics.prometheus import PrometheusMetrics
from canarypilot.policy import PrometheusSettings
from tests.metrics.fault_server import OK, SERVICE, Reply, ScriptedPrometheus, healthy_body

TARGET = Target(SERVICE)
TOKEN = "s3cr3t-token-value-42"


async def no_sleep(seconds: float) -> None:
    return None


def provider(url: str, **settings: object) -> PrometheusMetrics:
    options = {"url": url, "timeout_seconds": 0.5, "retries": 2, "backoff_seconds": 0.0, **settings}
    return PrometheusMetrics(PrometheusSettings(**options), sleep=no_sleep, now=lambda: 1_700_000_000.0)


async def test_healthy_server_gives_a_full_weight_proceed() -> None:
    with ScriptedPrometheus() as server:
        async with provider(server.url) as p:
            decision = await analyze(SERVICE, provider=p)
    assert decision.status is Status.PROCEED and decision.weight == 100.0
    assert len(server.queries()) == 4, "p99, requests, errors and staleness, once each"


async def test_refused_connection_is_metrics_unavailable_after_every_retry() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    async with provider(url) as p:
        with pytest.raises(MetricsUnavailable, match="after 3 attempt.*cannot reach"):
            await p.snapshot(TARGET)
        assert p.queries_sent == 4 * 3


async def test_answer_slower_than_the_timeout_is_metrics_unavailable() -> None:
    with ScriptedPrometheus([Reply(delay=3.0)]) as server:
        async with provider(server.url, timeout_seconds=0.2, retries=1) as p:
            started = time.monotonic()
            with pytest.raises(MetricsUnavailable, match=r"no answer .* within 0\.2s"):
                await p.snapshot(TARGET)
            elapsed = time.monotonic() - started
    assert elapsed < 1.5, f"two 0.2 s attempts took {elapsed:.2f}s: the timeout is not enforced"


async def test_500_then_200_is_retried_and_succeeds() -> None:
    with ScriptedPrometheus([Reply(500, b'{"status":"error","errorType":"internal"}'), OK]) as server:
        async with provider(server.url) as p:
            snapshot = await p.snapshot(TARGET)
    assert snapshot.canary.requests == 3000 and snapshot.stable.p99_seconds == 0.25
    # Every one of the four queries failed once and was sent again.
    assert len(server.queries()) == 8


async def test_persistent_503_gives_up_after_the_configured_retries() -> None:
    with ScriptedPrometheus([Reply(503, b"overloaded", "text/plain")]) as server:
        async with provider(server.url, retries=1) as p:
            with pytest.raises(MetricsUnavailable, match="HTTP 503"):
                await p.snapshot(TARGET)
    assert len(server.queries()) <= 4 * 2


async def test_400_is_never_retried_and_names_the_query() -> None:
    body = b'{"status":"error","errorType":"bad_data","error":"parse error at char 3"}'
    with ScriptedPrometheus([Reply(400, body)]) as server:
        async with provider(server.url) as p:
            with pytest.raises(QueryError, match="bad_data: parse error") as caught:
                await p.snapshot(TARGET)
    assert caught.value.query in server.queries()
    assert "(query: " in str(caught.value)
    assert len(server.queries()) <= 4, "a 4xx was retried"


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (Reply(200, b"<html><body>Sign in</body></html>", "text/html"), "text/html that is not"),
        (Reply(200, b'{"status":"success","data":{"resultType":"vec'), "not Prometheus JSON"),
        (Reply(200, b'{"status":"success"}'), "no data object"),
        (Reply(200, b'{"status":"success","data":{"resultType":"vector","result":[{}]}}'), "malformed"),
        # Issue 12, defect 6: these two escaped the provider's error handling as a 500.
        (Reply(200, b'{"status":"success","data":{"resultType":"vector","result":5}}'), "not a list"),
        (Reply(200, b"[" * 200_000 + b"]" * 200_000), "not Prometheus JSON"),
    ],
    ids=["html", "truncated-json", "no-data", "sample-without-value", "result-not-a-list", "nested-deep"],
)
async def test_garbage_answers_are_metrics_unavailable_never_proceed(reply: Reply, expected: str) -> None:
    with ScriptedPrometheus([reply]) as server:
        async with provider(server.url) as p:
            with pytest.raises(MetricsUnavailable, match=expected):
                await analyze(SERVICE, provider=p)
        assert len(server.queries()) <= 4, "a garbled 200 is not retried"


async def test_bearer_token_and_tenant_header_are_sent() -> None:
    with ScriptedPrometheus() as server:
        async with provider(server.url, bearer_token=TOKEN, headers={"X-Scope-OrgID": "team-a"}) as p:
            await p.snapshot(TARGET)
    for seen in server.seen:
        assert seen.headers["Authorization"] == f"Bearer {TOKEN}"
        assert seen.headers["X-Scope-OrgID"] == "team-a"


async def test_bearer_token_file_is_read_and_stripped(tmp_path) -> None:  # type: ignore[no-untyped-def]
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    with ScriptedPrometheus() as server:
        async with provider(server.url, bearer_token_file=str(token_file)) as p:
            await p.snapshot(TARGET)
    assert server.seen[0].headers["Authorization"] == f"Bearer {TOKEN}"


async def test_basic_auth_is_sent() -> None:
    with ScriptedPrometheus() as server:
        async with provider(server.url, basic_auth_user="grafana", basic_auth_password="pa55word") as p:
            await p.snapshot(TARGET)
    expected = "Basic " + base64.b64encode(b"grafana:pa55word").decode()
    assert server.seen[0].headers["Authorization"] == expected


async def test_refused_credentials_say_so_without_the_token(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    body = b'{"status":"error","errorType":"unauthorized","error":"bad token"}'
    with ScriptedPrometheus([Reply(401, body)]) as server:
        async with provider(server.url, bearer_token=TOKEN) as p:
            with pytest.raises(QueryError, match="refused the credentials") as caught:
                await p.snapshot(TARGET)
    assert TOKEN not in str(caught.value)
    assert TOKEN not in caplog.text


async def test_secrets_stay_out_of_errors_and_logs_on_every_fault(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    port = free_port()
    url = f"http://admin:{TOKEN}@127.0.0.1:{port}"
    async with provider(url, bearer_token=TOKEN, basic_auth_password=TOKEN) as p:
        assert TOKEN not in repr(p.settings)
        with pytest.raises(MetricsUnavailable) as caught:
            await p.snapshot(TARGET)
    assert "retry" in caplog.text, "retries are logged (at debug level)"
    assert TOKEN not in str(caught.value) and TOKEN not in caplog.text
    assert "***@127.0.0.1" in str(caught.value)


async def test_a_token_http_cannot_carry_is_refused_without_echoing_it() -> None:
    with pytest.raises(Exception, match="characters HTTP does not allow") as caught:
        provider("http://127.0.0.1:9", bearer_token=TOKEN + "\n")
    assert TOKEN not in str(caught.value)


async def test_facade_analyze_with_settings_reaches_the_server() -> None:
    with ScriptedPrometheus() as server:
        settings = Settings().merged({"prometheus": {"timeout_seconds": 1, "retries": 0}})
        decision = await analyze(SERVICE, prometheus=server.url, settings=settings, at=1_700_000_000.0)
    assert decision.status is Status.PROCEED
    assert all(s.query for s in server.seen)


def _impossible(what: str) -> Callable[[str, float], bytes]:
    def answer(query: str, at: float) -> bytes:
        body = healthy_body(query, at)
        if what == "negative" and "code" not in query and "timestamp(" not in query and "le," not in query:
            return body.replace(b'"3000"', b'"-3000"')
        if what == "more-errors" and "code" in query:
            return body.replace(b'"3"', b'"5000"')
        if what == "no-staleness" and "timestamp(" in query:
            return b'{"status":"success","data":{"resultType":"vector","result":[]}}'
        return body

    return answer


@pytest.mark.parametrize("what", ["negative", "more-errors", "no-staleness"])
async def test_impossible_backend_values_are_no_data_never_proceed(what: str) -> None:
    # Negative request counts, more errors than requests, or counts with no newest sample
    # cannot be measured; they once led to proceed (issue 12).
    with ScriptedPrometheus(answer=_impossible(what)) as server:
        async with provider(server.url) as p:
            decision = await analyze(SERVICE, provider=p)
    assert decision.status is Status.HOLD, decision


async def test_retry_after_is_waited_and_passed_on_to_the_caller() -> None:
    slept: list[float] = []

    async def record(seconds: float) -> None:
        slept.append(seconds)

    busy = Reply(503, b"busy", "text/plain", headers=(("Retry-After", "3"),))
    with ScriptedPrometheus([busy, busy, busy]) as server:
        settings = PrometheusSettings(url=server.url, retries=2, backoff_seconds=0.01, deadline_seconds=30)
        async with PrometheusMetrics(settings, sleep=record) as p:
            with pytest.raises(MetricsUnavailable, match="HTTP 503") as caught:
                await p.snapshot(TARGET)
    assert slept and set(slept) == {3.0}, "the server's Retry-After, not the 0.01 s backoff"
    assert caught.value.delay == 3.0, "serve answers Retry-After: 3 in turn"


async def test_a_hanging_prometheus_is_answered_within_the_deadline() -> None:
    # With 5 s per attempt and 3 retries a hanging Prometheus took 21.5 s, past the gate's
    # timeoutSeconds of 10: Argo only ever recorded timeouts (issue 12).
    with ScriptedPrometheus([Reply(delay=10.0)]) as server:
        settings = PrometheusSettings(url=server.url, timeout_seconds=5, retries=3, deadline_seconds=1.0)
        async with PrometheusMetrics(settings) as p:
            started = time.monotonic()
            with pytest.raises(MetricsUnavailable, match="no answer"):
                await p.snapshot(TARGET)
            elapsed = time.monotonic() - started
    assert elapsed < 1.5, f"answered after {elapsed:.2f}s, deadline 1 s"


def test_the_rendered_gate_waits_longer_than_the_analyzer_may_take() -> None:
    from canarypilot.render.argo import ArgoOptions, gate_template

    for deadline in (8.0, 3.5, 20.0):
        settings = Settings().merged({"prometheus": {"deadline_seconds": deadline}})
        options = ArgoOptions(service="payment-api", image="registry/payment-api:v2")
        web = gate_template(options, settings)["spec"]["metrics"][0]["provider"]["web"]
        assert web["timeoutSeconds"] >= deadline + 1
