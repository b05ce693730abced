"""`canarypilot serve` under bounded hostile loads on loopback: silent sockets, a
slowloris, a huge header and more connections than allowed. Before issue 12, 300 idle
sockets stayed open indefinitely and an 8 MiB header was read whole.

Each load is small and bounded in time; the service must shed it and keep answering.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.service.live import Served, serve

pytestmark = pytest.mark.integration

LIMITS = {
    "CANARYPILOT_SERVICE__HEADER_TIMEOUT_SECONDS": "1",
    "CANARYPILOT_SERVICE__KEEPALIVE_SECONDS": "1",
    "CANARYPILOT_SERVICE__MAX_CONNECTIONS": "50",
    "CANARYPILOT_SERVICE__MAX_HEADER_BYTES": "8192",
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    # An unreachable Prometheus: these tests never get as far as an analysis.
    with serve("http://127.0.0.1:9", tmp_path_factory.mktemp("limits"), env=LIMITS) as running:
        yield running


def connect(served: Served) -> socket.socket:
    host, port = served.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    return sock


def closed_by_server(sock: socket.socket, within: float) -> bool:
    """Whether the server closes ``sock`` within ``within`` seconds (reading what it sends)."""
    sock.settimeout(within)
    deadline = time.monotonic() + within
    try:
        while time.monotonic() < deadline:
            if sock.recv(65536) == b"":
                return True
    except (TimeoutError, ConnectionResetError):
        return False
    return False


def test_silent_sockets_are_closed_after_the_header_timeout(served: Served) -> None:
    socks = [connect(served) for _ in range(40)]
    try:
        started = time.monotonic()
        assert all(closed_by_server(s, within=4.0) for s in socks)
        assert time.monotonic() - started < 4.0
    finally:
        for s in socks:
            s.close()
    assert httpx.get(f"{served.url}/livez", timeout=2).status_code == 200


def test_a_slowloris_is_cut_off_though_it_keeps_sending(served: Served) -> None:
    sock = connect(served)
    try:
        sock.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        cut = False
        for i in range(30):  # one header byte every 0.2 s: 6 s if never cut
            try:
                sock.sendall(b"X-Slow: %d\r\n" % i)
            except (BrokenPipeError, ConnectionResetError):
                cut = True
                break
            if closed_by_server(sock, within=0.2):
                cut = True
                break
        assert cut, "the slow client was never cut off"
        assert time.monotonic() - started < 3.0
    finally:
        sock.close()


def test_a_huge_header_is_refused_without_being_read_whole(served: Served) -> None:
    sock = connect(served)
    try:
        sock.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\nX-Big: ")
        sent = 0
        try:
            for _ in range(8 * 16):  # up to 8 MiB in 64 KiB pieces
                sock.sendall(b"a" * 65536)
                sent += 65536
        except (BrokenPipeError, ConnectionResetError):
            pass
        sock.settimeout(3)
        try:
            answer = sock.recv(4096)
        except ConnectionResetError:
            answer = b""
        assert answer == b"" or answer.startswith(b"HTTP/1.1 400"), answer[:100]
        assert sent < 8 * 1024 * 1024, "the whole 8 MiB header was accepted"
    finally:
        sock.close()


def test_connections_beyond_the_limit_get_503_and_the_service_recovers(served: Served) -> None:
    idle = [connect(served) for _ in range(50)]
    try:
        over = httpx.get(f"{served.url}/livez", timeout=3)
        assert over.status_code == 503
    finally:
        for s in idle:
            s.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if httpx.get(f"{served.url}/livez", timeout=2).status_code == 200:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the service did not recover once the idle connections were gone")


def test_a_normal_client_keeps_its_connection_between_quick_requests(served: Served) -> None:
    with httpx.Client(base_url=served.url, timeout=2) as client:
        for _ in range(5):
            assert client.get("/livez").status_code == 200
            time.sleep(0.2)
        assert client.get("/livez").status_code == 200


def test_the_limits_are_documented_with_their_plain_text_answers() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "argo.md").read_text(encoding="utf-8")
    assert "Invalid HTTP request received." in doc and "header_timeout_seconds" in doc
