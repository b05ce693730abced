"""Bounds on the connections ``canarypilot serve`` accepts, so no client can hold it.

uvicorn alone keeps a connection that never sends a request open forever, reads a
header of any size, and accepts any number of connections. The analysis service is
called by Argo every few seconds; anything else that lingers is a fault or an
attack. So:

* **head deadline** — each request's line and headers must arrive within
  ``header_timeout_seconds`` of the connection opening (or of the previous
  response): a silent client or one sending a byte at a time (slowloris) is cut off;
* **header size** — a request head larger than ``max_header_bytes`` is refused
  (uvicorn answers ``400 Invalid HTTP request received.`` in plain text, then closes);
* **keep-alive** — an idle connection between requests closes after
  ``keepalive_seconds``;
* **connections** — beyond ``max_connections`` open connections, requests are
  answered ``503`` at once (uvicorn's ``limit_concurrency``; plain text).

The plain-text answers come from uvicorn before the app sees the request, so they
are the only answers of ``serve`` that are not JSON (see docs/argo.md).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from canarypilot.policy import ServiceSettings


class _HeadDeadline(H11Protocol):
    """h11 with a deadline for each request head (``header_timeout`` class attribute)."""

    header_timeout = 10.0
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._between_requests():
            self._arm()  # the first bytes of a request: its head must follow in time
        super().data_received(data)
        if not self._between_requests():
            self._disarm()  # the head arrived: the app and the body limits take over

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._disarm()  # idle now: uvicorn's keep-alive timeout governs until data comes

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _between_requests(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.header_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _too_slow(self) -> None:
        self._head_timer = None
        if self._between_requests() and not self.transport.is_closing():
            self.transport.close()


def uvicorn_limits(settings: ServiceSettings) -> dict[str, Any]:
    """The ``uvicorn.Config`` keyword arguments that apply ``settings``' connection bounds."""
    protocol = type("HeadDeadlineH11", (_HeadDeadline,), {"header_timeout": settings.header_timeout_seconds})
    return {
        "http": protocol,
        "h11_max_incomplete_event_size": settings.max_header_bytes,
        "timeout_keep_alive": settings.keepalive_seconds,
        "limit_concurrency": settings.max_connections,
    }
