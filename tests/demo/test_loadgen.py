"""The load generator: a fixed open-loop rate, bounded, stopping by itself."""

from __future__ import annotations

import asyncio
import random
import time

from canarypilot.demo.loadgen import LoadGenerator
from canarypilot.demo.sample_service import SampleService
from canarypilot.demo.scenarios import Behaviour
from canarypilot.local.processes import free_port


def _service(latency_ms: float, error_rate: float = 0.0) -> SampleService:
    behaviour = Behaviour(latency_ms=latency_ms, jitter=0, error_rate=error_rate)
    return SampleService("api", "v1-stable", behaviour, total_rps=200, rng=random.Random(3))


async def test_it_sends_the_configured_rate_and_stops_by_itself() -> None:
    async with _service(5, error_rate=0.1) as service:
        started = time.monotonic()
        stats = await LoadGenerator("127.0.0.1", service.port, rps=200, duration=2).run()
        took = time.monotonic() - started
    assert 380 <= stats.sent <= 420
    assert stats.answered == stats.sent == service.served
    assert 0.03 < stats.error_ratio < 0.2
    assert took < 4


async def test_in_flight_requests_are_bounded_when_the_server_is_slow() -> None:
    async with _service(2000) as service:  # every request takes 2 s
        gen = LoadGenerator("127.0.0.1", service.port, rps=200, duration=1, max_in_flight=20, timeout=3)
        stats = await gen.run()
    assert stats.sent == 20
    assert stats.skipped >= 150


async def test_stop_ends_a_run_without_a_duration() -> None:
    async with _service(5) as service:
        gen = LoadGenerator("127.0.0.1", service.port, rps=100)
        task = asyncio.create_task(gen.run())
        await asyncio.sleep(0.5)
        gen.stop()
        stats = await asyncio.wait_for(task, 5)
    assert 30 <= stats.sent <= 70


async def test_nothing_listening_counts_failures_instead_of_raising() -> None:
    stats = await LoadGenerator("127.0.0.1", free_port(), rps=50, duration=0.5).run()
    assert stats.sent > 0 and stats.failures == stats.sent
    assert stats.error_ratio == 1.0
