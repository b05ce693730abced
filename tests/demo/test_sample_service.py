"""The sample service: its behaviour per scenario, and the metrics Prometheus reads from it."""

from __future__ import annotations

import asyncio
import random
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from canarypilot.demo.sample_service import SampleService
from canarypilot.demo.scenarios import Behaviour


class Ticking:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _service(behaviour: Behaviour, clock: Ticking | None = None, rps: float = 300) -> SampleService:
    return SampleService(
        "payment-api",
        "v2-canary",
        behaviour,
        total_rps=rps,
        rng=random.Random(1),
        monotonic=clock or Ticking(),
    )


def test_service_times_stay_within_the_jitter_band() -> None:
    service = _service(Behaviour(latency_ms=60, jitter=0.25, error_rate=0))
    times = [service.plan()[0] for _ in range(2000)]
    assert min(times) >= 0.045 and max(times) <= 0.075
    assert 0.058 < sorted(times)[1000] < 0.062


def test_the_error_rate_is_the_configured_one() -> None:
    service = _service(Behaviour(error_rate=0.08))
    codes = [service.plan()[1] for _ in range(5000)]
    assert 0.065 < codes.count(500) / len(codes) < 0.095


def test_a_traffic_change_starts_a_warmup_spike_that_fades() -> None:
    clock = Ticking()
    service = _service(Behaviour(latency_ms=60, jitter=0, warmup_factor=2.5, warmup_spike_seconds=4), clock)
    assert service.plan()[0] == 0.060
    service.traffic_changed()
    assert abs(service.plan()[0] - 0.150) < 1e-9  # 2.5x at once
    clock.now += 2
    assert abs(service.plan()[0] - 0.105) < 1e-9  # halfway down
    clock.now += 2.5
    assert service.plan()[0] == 0.060


def test_the_capacity_knee_fails_requests_only_above_its_share_of_traffic() -> None:
    clock = Ticking()
    service = _service(Behaviour(error_rate=0, knee_share=0.30), clock, rps=300)  # knee at 90 rps

    def run(rate: float, seconds: float) -> list[int]:
        codes = []
        for _ in range(int(rate * seconds)):
            clock.now += 1 / rate
            codes.append(service.plan()[1])
        return codes

    below = run(60, 4)  # 20% of the traffic
    above = run(120, 4)  # 40% of the traffic
    assert below.count(503) == 0
    assert above[-240:].count(503) / 240 > 0.15


async def test_metrics_carry_the_article_names_and_labels() -> None:
    async with _service(Behaviour(latency_ms=5, error_rate=0.5)) as service, httpx.AsyncClient() as client:
        codes = [(await client.get(service.url + "/")).status_code for _ in range(40)]
        page = await client.get(service.url + "/metrics")
        assert (await client.get(service.url + "/healthz")).status_code == 200
        assert (await client.get(service.url + "/nope")).status_code == 404
    assert set(codes) == {200, 500}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(page.text)
        for s in family.samples
    }
    labels = (("job", "payment-api"), ("version", "v2-canary"))
    assert samples[("http_request_duration_seconds_count", labels)] == 40
    for code in (200, 500):
        key = ("http_requests_total", (("code", str(code)), *labels))
        assert samples[key] == codes.count(code)
    buckets = [k for k in samples if k[0] == "http_request_duration_seconds_bucket"]
    assert len(buckets) > 50  # fine buckets: a 15% p99 difference is resolvable
    assert service.served == 40


async def test_recorded_durations_are_the_behaviours_not_the_loops_delays() -> None:
    behaviour = Behaviour(latency_ms=50, jitter=0, error_rate=0)
    async with _service(behaviour) as service, httpx.AsyncClient() as client:
        for _ in range(5):
            started = time.perf_counter()
            answer = asyncio.create_task(client.get(service.url + "/"))
            await asyncio.sleep(0.01)
            time.sleep(0.1)  # the loop is busy while the request is served: not the version's doing
            await answer
            assert time.perf_counter() - started >= 0.1
        page = (await client.get(service.url + "/metrics")).text
    total = next(
        s.value
        for f in text_string_to_metric_families(page)
        for s in f.samples
        if s.name == "http_request_duration_seconds_sum"
    )
    assert total == pytest.approx(0.25)
