"""A small real HTTP server on loopback that plays a misbehaving Prometheus.

Each distinct query gets its own script of replies (the last one repeats), so
"500 then 200" means every one of the provider's concurrent queries first sees a
500. Healthy replies are Prometheus-shaped answers for a service whose two
versions are identical (so a successful analysis proceeds at 100%).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

from tests.support.promdata import bucket_rows

SERVICE = "checkout"
VERSIONS = ("v1-stable", "v2-canary")


def healthy_body(query: str, at: float) -> bytes:
    """What Prometheus answers to each of the provider's four queries for identical versions."""
    if query.startswith("sum by (le,"):
        result = [
            {"metric": {"job": SERVICE, "version": v, "le": le}, "value": [at, x]}
            for v in VERSIONS
            for le, x in bucket_rows("0.25")
        ]
        return json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}}).encode()
    if "timestamp(" in query:
        value = f"{at:.3f}"
    elif "code" in query:
        value = "3"
    else:
        value = "3000"
    result = [{"metric": {"job": SERVICE, "version": v}, "value": [at, value]} for v in VERSIONS]
    return json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}}).encode()


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that gave up (timeout, cancelled sibling query) is part of the script.
        pass


@dataclass(frozen=True)
class Reply:
    """One answer: a status, a body (or ``None`` for the healthy Prometheus body), a delay."""

    status: int = 200
    body: bytes | None = None
    content_type: str = "application/json"
    delay: float = 0.0
    headers: tuple[tuple[str, str], ...] = ()


OK = Reply()


@dataclass
class Seen:
    """One request as the server saw it."""

    path: str
    query: str
    headers: dict[str, str]
    at: float = 0.0


@dataclass
class ScriptedPrometheus:
    """``with ScriptedPrometheus([Reply(500), OK]) as server: ... server.url``."""

    script: Sequence[Reply] = (OK,)
    answer: Callable[[str, float], bytes] = healthy_body
    seen: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._served: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = _QuietServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def _next(self, query: str) -> Reply:
        with self._lock:
            index = self._served.get(query, 0)
            self._served[query] = index + 1
        return self.script[min(index, len(self.script) - 1)]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                parts = urlsplit(self.path)
                params = parse_qs(parts.query)
                query = params.get("query", [""])[0]
                at = float(params.get("time", ["0"])[0])
                outer.seen.append(Seen(parts.path, query, dict(self.headers.items()), at))
                reply = outer._next(query)
                if reply.delay and outer._stopping.wait(reply.delay):
                    return
                body = reply.body if reply.body is not None else outer.answer(query, at)
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in reply.headers:
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        return Handler

    def __enter__(self) -> ScriptedPrometheus:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def queries(self) -> list[str]:
        return [s.query for s in self.seen if s.path == "/api/v1/query"]
