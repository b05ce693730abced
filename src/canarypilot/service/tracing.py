"""A request id for every request, echoed in the answer and in one JSON access-log line.

A caller's ``X-Request-ID`` is kept when it looks like an id (so Argo's or a proxy's id
can be followed through); anything else is replaced by a fresh one. Headers are never
logged: the Authorization header carries the bearer token.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

access_log = logging.getLogger("canarypilot.service.access")

_SCOPE_KEY = "canarypilot.request"
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


@dataclass
class RequestContext:
    """What the access log line needs to know about one request."""

    request_id: str
    service: str | None = None

    @staticmethod
    def of(scope: Scope) -> RequestContext:
        ctx = scope.get(_SCOPE_KEY)
        if ctx is None:
            ctx = scope[_SCOPE_KEY] = RequestContext(uuid.uuid4().hex[:16])
        assert isinstance(ctx, RequestContext)
        return ctx


def request_id_of(scope: Scope) -> str:
    return RequestContext.of(scope).request_id


class RequestTracing:
    """ASGI middleware: assigns the request id, adds ``X-Request-ID``, logs one line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = _header(scope, b"x-request-id")
        rid = given if given and _VALID_ID.fullmatch(given) else uuid.uuid4().hex[:16]
        ctx = scope[_SCOPE_KEY] = RequestContext(rid)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if access_log.isEnabledFor(logging.INFO):
                extra: dict[str, Any] = {
                    "request_id": rid,
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                }
                if ctx.service:
                    extra["service"] = ctx.service
                access_log.info("request", extra=extra)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None
