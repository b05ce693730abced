"""The embedded weighted reverse proxy: the demo's traffic router when HAProxy is absent.

It listens on 127.0.0.1 and sends each request (not each connection: keep-alive
clients would otherwise stick to one version) to the canary with probability
``weight / 100`` and to the stable version otherwise. It implements the
``Router`` protocol, so the rollout controller drives it like any other router.
The weight may be changed from any task or thread; the change applies to the
next request.

It is a demo component, not a production proxy: HTTP/1.1 with Content-Length
bodies only (chunked bodies are refused), heads and bodies size-limited, one
small keep-alive pool per upstream. The wire functions below (``read_message``,
``render``) are deliberately small and fast, since the demo's load generator,
proxy and sample services share two CPU cores; the demo's other parts use them
too.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from canarypilot._exceptions import RouterError

#: Largest request or response head accepted (bytes).
MAX_HEAD_BYTES = 16 * 1024
#: Largest request body the proxy forwards (bytes).
MAX_REQUEST_BODY = 1024 * 1024
#: Largest response body the proxy relays (bytes); /metrics pages fit easily.
MAX_RESPONSE_BODY = 8 * 1024 * 1024
_HOP_BY_HOP = {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"te", b"upgrade"}
_NO_BODY = {204, 304}


class ProtocolError(Exception):
    """The peer sent something that is not the HTTP/1.1 this module speaks."""


class BodyTooLarge(ProtocolError):
    """A message body exceeded its limit."""


@dataclass(slots=True)
class Message:
    """One HTTP/1.1 request or response.

    For a request ``first`` is the method, ``second`` the target; for a response
    ``first`` is the status code (as bytes) and ``second`` the reason phrase.
    Header names are lower-cased.
    """

    first: bytes
    second: bytes
    version: bytes
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    @property
    def keep_alive(self) -> bool:
        tokens = {t.strip().lower() for t in (self.header(b"connection") or b"").split(b",")}
        if self.version == b"HTTP/1.0":
            return b"keep-alive" in tokens
        return b"close" not in tokens

    @property
    def status(self) -> int:
        return int(self.first)


async def read_message(
    reader: asyncio.StreamReader, *, body_limit: int, response: bool = False, head_only: bool = False
) -> Message | None:
    """The next message on ``reader``; None when the peer closed before sending one.

    ``head_only``: the message is the response to a HEAD request (no body follows).
    """
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise ProtocolError("connection closed in the middle of a message head") from None
    except asyncio.LimitOverrunError:
        raise ProtocolError(f"message head larger than {MAX_HEAD_BYTES} bytes") from None
    lines = head[:-4].split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or (len(parts) < 3 and not response):
        raise ProtocolError("malformed start line")
    if response:
        version, first, second = parts[0], parts[1], parts[2] if len(parts) > 2 else b""
        if not first.isdigit() or len(first) != 3:
            raise ProtocolError("malformed status code")
    else:
        first, second, version = parts
    if version not in (b"HTTP/1.1", b"HTTP/1.0"):
        raise ProtocolError("only HTTP/1.0 and HTTP/1.1 are spoken here")
    headers: list[tuple[bytes, bytes]] = []
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip() or b" " in name:
            raise ProtocolError("malformed header line")
        headers.append((name.lower(), value.strip()))
    message = Message(first, second, version, headers)
    if message.header(b"transfer-encoding") is not None:
        raise ProtocolError("chunked bodies are not supported; send Content-Length")
    if head_only or (response and (message.status in _NO_BODY or message.status < 200)):
        return message
    length = message.header(b"content-length")
    if length is None:
        if response:  # a body delimited by the end of the connection
            chunks, size = [], 0
            while chunk := await reader.read(65536):
                size += len(chunk)
                if size > body_limit:
                    raise BodyTooLarge(f"body larger than {body_limit} bytes")
                chunks.append(chunk)
            message.body = b"".join(chunks)
            message.headers.append((b"connection", b"close"))
        return message
    if not length.isdigit():
        raise ProtocolError("malformed Content-Length")
    size = int(length)
    if size > body_limit:
        raise BodyTooLarge(f"body of {size} bytes is larger than {body_limit}")
    try:
        message.body = await reader.readexactly(size)
    except asyncio.IncompleteReadError:
        raise ProtocolError("connection closed in the middle of a body") from None
    return message


def render(
    start: bytes, headers: list[tuple[bytes, bytes]], body: bytes, *, length: bytes | None = None
) -> bytes:
    """A message with a Content-Length body; hop-by-hop and length headers are replaced.

    ``length`` overrides the Content-Length (the answer to a HEAD request has no body).
    """
    lines = [start]
    lines.extend(k + b": " + v for k, v in headers if k not in _HOP_BY_HOP and k != b"content-length")
    lines.append(b"content-length: " + (length if length is not None else str(len(body)).encode()))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def render_response(status: int, body: bytes, *, content_type: bytes = b"text/plain; charset=utf-8") -> bytes:
    """A complete response with a Content-Length body."""
    return render(
        b"HTTP/1.1 %d %s" % (status, _REASONS.get(status, b"Status")), [(b"content-type", content_type)], body
    )


_REASONS = {
    200: b"OK",
    400: b"Bad Request",
    404: b"Not Found",
    413: b"Content Too Large",
    500: b"Internal Server Error",
    502: b"Bad Gateway",
    503: b"Service Unavailable",
    504: b"Gateway Timeout",
}


async def close_writer(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError, asyncio.CancelledError):
        await writer.wait_closed()


async def serve_connection(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    connections: set[asyncio.Task[None]],
    answer: Callable[[Message], Awaitable[bytes]],
) -> None:
    """One HTTP/1.1 connection: answer each request until the client stops keeping it alive.

    The task is tracked in ``connections`` so a server can cancel what is still open when it
    stops; bad requests get 413 or 400, and a client that goes away ends the loop quietly.
    """
    task = asyncio.current_task()
    assert task is not None
    connections.add(task)
    try:
        while True:
            request = await read_message(reader, body_limit=MAX_REQUEST_BODY)
            if request is None:
                return
            writer.write(await answer(request))
            await writer.drain()
            if not request.keep_alive:
                return
    except BodyTooLarge:
        writer.write(render_response(413, b"request body too large\n"))
    except ProtocolError as exc:
        writer.write(render_response(400, f"{exc}\n".encode()))
    except OSError:
        pass  # the client went away
    except asyncio.CancelledError:
        pass  # shutting down: end quietly (asyncio 3.11 logs handlers that end cancelled)
    finally:
        connections.discard(task)
        await close_writer(writer)


@dataclass(frozen=True, slots=True)
class Upstream:
    """Where one version listens."""

    host: str
    port: int


class _Connection:
    """A kept-alive connection to an upstream."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer


class _Pool:
    """Idle keep-alive connections to one upstream."""

    def __init__(self, upstream: Upstream, size: int) -> None:
        self.upstream = upstream
        self.size = size
        self.idle: list[_Connection] = []

    async def acquire(self, timeout: float) -> tuple[_Connection, bool]:
        """A connection, and whether it was reused (the server may have closed it meanwhile)."""
        while self.idle:
            conn = self.idle.pop()
            if not conn.reader.at_eof():
                return conn, True
            await close_writer(conn.writer)
        opened = asyncio.open_connection(self.upstream.host, self.upstream.port, limit=MAX_HEAD_BYTES)
        reader, writer = await asyncio.wait_for(opened, timeout)
        return _Connection(reader, writer), False

    def release(self, conn: _Connection) -> None:
        if len(self.idle) < self.size:
            self.idle.append(conn)
        else:
            conn.writer.close()

    async def close(self) -> None:
        idle, self.idle = self.idle, []
        for conn in idle:
            await close_writer(conn.writer)


class WeightedProxy:
    """A reverse proxy splitting requests between stable and canary by weight.

    >>> # async with WeightedProxy(Upstream("127.0.0.1", 8001), Upstream("127.0.0.1", 8002)) as proxy:
    >>> #     await proxy.set_weight(10)   # 10% of requests now go to the canary
    """

    def __init__(
        self,
        stable: Upstream,
        canary: Upstream,
        *,
        weight: float = 0.0,
        rng: random.Random | None = None,
        upstream_timeout: float = 10.0,
        pool_size: int = 64,
    ) -> None:
        self.stable = stable
        self.canary = canary
        self._lock = threading.Lock()
        self._weight = self._checked(weight)
        self.history: list[float] = []
        self.served = {"stable": 0, "canary": 0}
        self.upstream_failures = 0
        self._rng = rng or random.Random()
        self._timeout = upstream_timeout
        self._pools = {"stable": _Pool(stable, pool_size), "canary": _Pool(canary, pool_size)}
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- Router protocol -------------------------------------------------------------

    async def set_weight(self, weight: float) -> None:
        self.set_weight_now(weight)

    def set_weight_now(self, weight: float) -> None:
        """``set_weight`` for callers in other threads; applies to the next request."""
        checked = self._checked(weight)
        with self._lock:
            self._weight = checked
            self.history.append(checked)

    async def get_weight(self) -> float:
        return self._weight

    async def reset(self) -> None:
        await self.set_weight(0.0)

    @staticmethod
    def _checked(weight: float) -> float:
        if not 0 <= weight <= 100:  # also false for NaN
            raise RouterError(f"weight {weight!r} outside 0..100")
        return float(weight)

    # -- serving ---------------------------------------------------------------------

    async def start(self, port: int = 0) -> WeightedProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", port, limit=MAX_HEAD_BYTES)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        for pool in self._pools.values():
            await pool.close()

    async def __aenter__(self) -> WeightedProxy:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _pick(self) -> str:
        return "canary" if self._rng.random() * 100 < self._weight else "stable"

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await serve_connection(reader, writer, self._connections, self._forward)

    async def _forward(self, request: Message) -> bytes:
        """The response to send back for ``request``, from the upstream picked for it."""
        side = self._pick()
        pool = self._pools[side]
        wire = render(b"%s %s HTTP/1.1" % (request.first, request.second), request.headers, request.body)
        for attempt in (1, 2):
            try:
                conn, reused = await pool.acquire(self._timeout)
            except (OSError, TimeoutError):
                self.upstream_failures += 1
                return render_response(502, f"{side} upstream unreachable\n".encode())
            try:
                async with asyncio.timeout(self._timeout):
                    conn.writer.write(wire)
                    await conn.writer.drain()
                    response = await read_message(
                        conn.reader,
                        body_limit=MAX_RESPONSE_BODY,
                        response=True,
                        head_only=request.first == b"HEAD",
                    )
            except (OSError, TimeoutError, ProtocolError) as exc:
                await close_writer(conn.writer)
                if reused and attempt == 1 and not isinstance(exc, TimeoutError):
                    continue  # a kept-alive connection the upstream had closed: once more, fresh
                self.upstream_failures += 1
                status = 504 if isinstance(exc, TimeoutError) else 502
                return render_response(status, f"{side} upstream failed\n".encode())
            if response is None:
                await close_writer(conn.writer)
                if reused and attempt == 1:
                    continue
                self.upstream_failures += 1
                return render_response(502, f"{side} upstream closed the connection\n".encode())
            if response.keep_alive:
                pool.release(conn)
            else:
                await close_writer(conn.writer)
            self.served[side] += 1
            start = b"HTTP/1.1 %s %s" % (response.first, response.second)
            length = response.header(b"content-length") if request.first == b"HEAD" else None
            return render(start, response.headers, response.body, length=length)
        raise AssertionError("unreachable")  # pragma: no cover
