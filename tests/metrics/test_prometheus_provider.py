"""The provider's reading of Prometheus answers (unit tests over httpx.MockTransport).

Values arrive as strings and may be "NaN" or "+Inf"; an empty vector is "no
data", never zero. The judge must then hold, never proceed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from canarypilot import Status, Target, analyze
from canarypilot.metrics.prometheus import PrometheusMetrics
from canarypilot.policy import PrometheusSettings, QueryPolicy
from tests.support.promdata import bucket_rows

AT = 1_700_000_000.0
TARGET = Target("checkout")


def vector(rows: dict[str, str], service: str = "checkout") -> dict[str, Any]:
    result = [{"metric": {"job": service, "version": v}, "value": [AT, x]} for v, x in rows.items()]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


def buckets(p99: dict[str, str], service: str = "checkout") -> dict[str, Any]:
    result = [
        {"metric": {"job": service, "version": v, "le": le}, "value": [AT, x]}
        for v, quantile in p99.items()
        for le, x in bucket_rows(quantile)
    ]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


def answers(
    p99: dict[str, str],
    requests: dict[str, str],
    errors: dict[str, str],
    newest: dict[str, str] | None = None,
) -> Callable[[str], dict[str, Any]]:
    def answer(query: str) -> dict[str, Any]:
        if query.startswith("histogram_quantile"):  # a custom latency template
            return vector(p99)
        if query.startswith("sum by (le,"):
            return buckets(p99)
        if query.startswith("max by"):
            return vector(newest if newest is not None else dict.fromkeys(requests, str(AT)))
        return vector(errors if "code=~" in query else requests)

    return answer


class Recorder:
    def __init__(self, answer: Callable[[str], dict[str, Any]]) -> None:
        self.answer = answer
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200, json=self.answer(request.url.params["query"]))

    @property
    def queries(self) -> list[str]:
        return [r.url.params["query"] for r in self.requests]


def provider(recorder: Recorder, query: QueryPolicy | None = None) -> PrometheusMetrics:
    return PrometheusMetrics(
        PrometheusSettings(url="http://prometheus.test:9090"),
        query,
        transport=httpx.MockTransport(recorder),
        now=lambda: AT,
    )


HEALTHY = answers(
    p99={"v1-stable": "0.2", "v2-canary": "0.21"},
    requests={"v1-stable": "6000", "v2-canary": "1500"},
    errors={"v1-stable": "6", "v2-canary": "3"},
)


async def test_snapshot_reads_all_three_signals_per_version() -> None:
    recorder = Recorder(HEALTHY)
    async with provider(recorder) as p:
        snap = await p.snapshot(TARGET)
    assert (snap.stable.p99_seconds, snap.stable.requests, snap.stable.error_rate) == (0.2, 6000, 0.001)
    assert (snap.canary.p99_seconds, snap.canary.requests, snap.canary.error_rate) == (0.21, 1500, 0.002)
    assert snap.at == AT and snap.window_seconds == 300 and snap.age_seconds == 0


async def test_four_queries_at_one_evaluation_time() -> None:
    recorder = Recorder(HEALTHY)
    async with provider(recorder) as p:
        await p.snapshot(TARGET)
    assert len(recorder.requests) == 4
    assert {r.url.params["time"] for r in recorder.requests} == {f"{AT:.3f}"}
    assert {r.url.path for r in recorder.requests} == {"/api/v1/query"}


async def test_many_services_share_the_same_four_queries() -> None:
    targets = [Target(f"svc-{i}") for i in range(5)]
    recorder = Recorder(lambda q: {"status": "success", "data": {"resultType": "vector", "result": []}})
    async with provider(recorder) as p:
        snaps = await p.snapshot_many(targets)
    assert len(recorder.requests) == 4 and set(snaps) == set(targets)
    assert 'job=~"svc-0|svc-1|svc-2|svc-3|svc-4"' in recorder.queries[0]


async def test_window_override_reaches_every_range() -> None:
    recorder = Recorder(HEALTHY)
    async with provider(recorder) as p:
        snap = await p.snapshot(TARGET, window_seconds=90.7)
    assert snap.window_seconds == 90
    assert all("[90s]" in q for q in recorder.queries[:3])


async def test_extra_selector_is_added_to_every_query() -> None:
    recorder = Recorder(HEALTHY)
    async with provider(recorder, QueryPolicy(extra_selector='namespace="prod"')) as p:
        await p.snapshot(TARGET)
    assert all('namespace="prod"' in q for q in recorder.queries)


CUSTOM_LATENCY = "histogram_quantile(0.99, sum by (le, $by) (rate(my_latency_bucket{$selector}[$window])))"


@pytest.mark.parametrize(
    ("p99", "reason"),
    [
        ({"v1-stable": "0.2", "v2-canary": "NaN"}, "canary p99 (v2-canary) is NaN"),
        ({"v1-stable": "0.2", "v2-canary": "+Inf"}, "canary p99 (v2-canary) is infinite"),
        ({"v1-stable": "0.2"}, "canary p99 (v2-canary): no series"),
        ({"v1-stable": "0", "v2-canary": "0.2"}, "stable p99 is 0"),
    ],
    ids=["nan", "inf", "missing", "zero-stable"],
)
async def test_unusable_latency_holds(p99: dict[str, str], reason: str) -> None:
    recorder = Recorder(answers(p99, {"v1-stable": "6000", "v2-canary": "1500"}, {}))
    # A quantile computed from buckets is never infinite; a custom template can be.
    custom = "+Inf" in p99.values()
    query = QueryPolicy(latency_template=CUSTOM_LATENCY) if custom else None
    async with provider(recorder, query) as p:
        decision = await analyze("checkout", provider=p)
    assert decision.status is Status.HOLD and decision.weight is None
    assert any(reason in r for r in decision.reasons), decision.reasons


async def test_empty_vectors_are_no_data_not_zero() -> None:
    recorder = Recorder(answers({}, {}, {}, newest={}))
    async with provider(recorder) as p:
        snap = await p.snapshot(TARGET)
        decision = await analyze("checkout", provider=p)
    assert snap.canary.requests is None and snap.canary.error_rate is None and snap.age_seconds is None
    assert decision.status is Status.HOLD
    assert any("no series" in r for r in decision.reasons)


async def test_no_error_series_with_requests_means_no_errors() -> None:
    recorder = Recorder(
        answers({"v1-stable": "0.2", "v2-canary": "0.2"}, {"v1-stable": "10", "v2-canary": "200"}, {})
    )
    async with provider(recorder) as p:
        snap = await p.snapshot(TARGET)
    assert snap.canary.error_rate == 0.0 and snap.stable.error_rate == 0.0


async def test_zero_requests_give_an_undefined_error_rate_and_hold() -> None:
    recorder = Recorder(answers({"v1-stable": "0.2"}, {"v1-stable": "6000", "v2-canary": "0"}, {}))
    async with provider(recorder) as p:
        snap = await p.snapshot(TARGET)
        decision = await analyze("checkout", provider=p)
    assert snap.canary.error_rate is not None and math.isnan(snap.canary.error_rate)
    assert decision.status is Status.HOLD


async def test_stale_series_hold() -> None:
    newest = {"v1-stable": str(AT), "v2-canary": str(AT - 600)}
    recorder = Recorder(
        answers(
            {"v1-stable": "0.2", "v2-canary": "0.2"}, {"v1-stable": "6000", "v2-canary": "1500"}, {}, newest
        )
    )
    async with provider(recorder) as p:
        decision = await analyze("checkout", provider=p)
    assert decision.status is Status.HOLD
    assert any("600s old" in r for r in decision.reasons)


async def test_a_matrix_answer_from_an_overridden_template_is_a_query_error() -> None:
    from canarypilot import QueryError

    matrix = {"status": "success", "data": {"resultType": "matrix", "result": []}}
    recorder = Recorder(lambda q: matrix)
    async with provider(recorder) as p:
        with pytest.raises(QueryError, match="expected an instant vector, got 'matrix'"):
            await p.snapshot(TARGET)


async def test_oversized_answer_is_refused() -> None:
    from canarypilot import MetricsUnavailable
    from canarypilot.metrics import prometheus

    big = json.dumps(vector({"v1-stable": "1"})) + " " * prometheus.MAX_RESPONSE_BYTES

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=big.encode())

    async with PrometheusMetrics(
        PrometheusSettings(url="http://prometheus.test"), transport=httpx.MockTransport(handler)
    ) as p:
        with pytest.raises(MetricsUnavailable, match="exceeds 8 MiB"):
            await p.snapshot(TARGET)


async def test_is_online_reflects_readiness() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503 if request.url.path == "/-/ready" else 200, text="not ready")

    async with PrometheusMetrics(
        PrometheusSettings(url="http://prometheus.test"), transport=httpx.MockTransport(handler)
    ) as p:
        assert await p.is_online() is False


def test_unreadable_ca_bundle_is_a_config_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from canarypilot import ConfigError

    settings = PrometheusSettings(url="https://prometheus.test", ca_bundle=str(tmp_path / "absent.pem"))
    with pytest.raises(ConfigError, match="cannot load CA bundle"):
        PrometheusMetrics(settings)
