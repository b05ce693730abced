"""The embedded weighted proxy, with real upstream servers on loopback."""

from __future__ import annotations

import asyncio
import random
import threading

import httpx
import pytest

from canarypilot._exceptions import RouterError
from canarypilot.routing.base import Router
from canarypilot.routing.proxy import MAX_REQUEST_BODY, Upstream, WeightedProxy, read_message, render


class Echo:
    """An upstream that answers with its own name; can close after each answer."""

    def __init__(self, name: str, *, close: bool = False) -> None:
        self.name = name.encode()
        self.close = close
        self.seen: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while (request := await read_message(reader, body_limit=MAX_REQUEST_BODY)) is not None:
                self.seen.append(request.body)
                headers = [(b"connection", b"close")] if self.close else []
                writer.write(render(b"HTTP/1.1 200 OK", [*headers, (b"x-upstream", self.name)], self.name))
                await writer.drain()
                if self.close:
                    break
        finally:
            writer.close()

    async def __aenter__(self) -> Upstream:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return Upstream("127.0.0.1", self.server.sockets[0].getsockname()[1])

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()


async def _count(url: str, n: int) -> dict[str, int]:
    counts = {"stable": 0, "canary": 0}
    async with httpx.AsyncClient() as client:
        for _ in range(n):
            response = await client.get(url)
            assert response.status_code == 200
            counts[response.text] += 1
    return counts


async def test_it_is_a_router() -> None:
    proxy = WeightedProxy(Upstream("127.0.0.1", 1), Upstream("127.0.0.1", 2))
    assert isinstance(proxy, Router)


@pytest.mark.parametrize("weight", [0, 100])
async def test_the_extremes_send_everything_to_one_side(weight: float) -> None:
    async with Echo("stable") as stable, Echo("canary") as canary, WeightedProxy(stable, canary) as proxy:
        await proxy.set_weight(weight)
        counts = await _count(proxy.url, 50)
    side = "canary" if weight == 100 else "stable"
    assert counts[side] == 50


async def test_requests_are_split_by_weight_per_request_not_per_connection() -> None:
    async with (
        Echo("stable") as stable,
        Echo("canary") as canary,
        WeightedProxy(stable, canary, rng=random.Random(7)) as proxy,
    ):
        await proxy.set_weight(20)
        counts = await _count(proxy.url, 400)  # one keep-alive connection
        assert await proxy.get_weight() == 20
        assert proxy.served == counts
    # binomial(400, 0.2): mean 80, sd 8
    assert 50 <= counts["canary"] <= 110


async def test_a_weight_change_from_another_thread_applies_to_the_next_request() -> None:
    async with Echo("stable") as stable, Echo("canary") as canary, WeightedProxy(stable, canary) as proxy:
        assert (await _count(proxy.url, 5))["stable"] == 5
        thread = threading.Thread(target=proxy.set_weight_now, args=(100,))
        thread.start()
        thread.join()
        assert (await _count(proxy.url, 5))["canary"] == 5
        await proxy.reset()
        assert await proxy.get_weight() == 0
        assert proxy.history == [100.0, 0.0]


@pytest.mark.parametrize("weight", [-1, 100.5, float("nan")])
async def test_weights_outside_0_to_100_are_refused_and_keep_the_old_one(weight: float) -> None:
    proxy = WeightedProxy(Upstream("127.0.0.1", 1), Upstream("127.0.0.1", 2), weight=10)
    with pytest.raises(RouterError):
        await proxy.set_weight(weight)
    assert await proxy.get_weight() == 10


async def test_a_dead_upstream_gives_502_not_a_hang() -> None:
    async with Echo("stable") as stable:
        dead = Upstream("127.0.0.1", 1)
        async with WeightedProxy(stable, dead, weight=100, upstream_timeout=2) as proxy:
            async with httpx.AsyncClient() as client:
                response = await client.get(proxy.url)
            assert response.status_code == 502
            assert "canary" in response.text
            assert proxy.upstream_failures == 1


async def test_upstreams_that_close_each_connection_still_serve_every_request() -> None:
    async with (
        Echo("stable", close=True) as stable,
        Echo("canary", close=True) as canary,
        WeightedProxy(stable, canary, weight=50) as proxy,
    ):
        counts = await _count(proxy.url, 40)
    assert counts["stable"] + counts["canary"] == 40


async def test_request_bodies_are_forwarded_and_oversized_ones_refused() -> None:
    echo = Echo("stable")
    async with (
        echo as stable,
        Echo("canary") as canary,
        WeightedProxy(stable, canary) as proxy,
        httpx.AsyncClient() as client,
    ):
        ok = await client.post(proxy.url, content=b"hello")
        big = await client.post(proxy.url, content=b"x" * (MAX_REQUEST_BODY + 1))
    assert ok.status_code == 200
    assert echo.seen == [b"hello"]
    assert big.status_code == 413


async def test_garbage_gets_400_and_the_proxy_keeps_serving() -> None:
    async with Echo("stable") as stable, Echo("canary") as canary, WeightedProxy(stable, canary) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"NONSENSE\r\n\r\n")
        answer = await reader.read()
        writer.close()
        await writer.wait_closed()
        assert answer.startswith(b"HTTP/1.1 400")
        assert (await _count(proxy.url, 3))["stable"] == 3


async def test_chunked_requests_are_refused_rather_than_misread() -> None:
    async with Echo("stable") as stable, Echo("canary") as canary, WeightedProxy(stable, canary) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(
            b"POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        )
        answer = await reader.read()
        writer.close()
        await writer.wait_closed()
    assert answer.startswith(b"HTTP/1.1 400")
