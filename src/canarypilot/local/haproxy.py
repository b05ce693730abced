"""A real HAProxy on loopback, splitting traffic between a stable and a canary server.

It listens on a free 127.0.0.1 port, with a generated configuration and a
runtime API (unix socket, and optionally a TCP port) at ``level admin`` so a
``HAProxyRouter`` can move the weights. The demo and the integration tests
start it this way; ``stop`` (or leaving the ``with`` block) ends it.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
from pathlib import Path
from typing import Self

from canarypilot.local.processes import LocalServer, free_port, require

BACKEND = "app"
STABLE_SERVER = "stable"
CANARY_SERVER = "canary"


class LocalHAProxy(LocalServer):
    """HAProxy in front of ``stable`` and ``canary`` (host:port strings).

    >>> # with LocalHAProxy(workdir, stable="127.0.0.1:8001", canary="127.0.0.1:8002") as lb:
    >>> #     lb.url, lb.runtime_socket
    """

    name = "haproxy"

    def __init__(
        self,
        workdir: Path,
        *,
        stable: str,
        canary: str,
        canary_weight: int = 0,
        runtime_tcp: bool = False,
        port: int | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.stable = stable
        self.canary = canary
        self.canary_weight = canary_weight
        self.port = port or free_port()
        self.runtime_port = free_port() if runtime_tcp else None
        # unix socket paths are limited to 107 bytes; pytest's tmp dirs can be longer
        self._sockdir = Path(tempfile.mkdtemp(prefix="cp-haproxy-"))
        self.runtime_socket = str(self._sockdir / "admin.sock")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def runtime_address(self) -> str:
        """The TCP runtime API when enabled, else the unix socket."""
        if self.runtime_port is not None:
            return f"tcp://127.0.0.1:{self.runtime_port}"
        return self.runtime_socket

    def config(self) -> str:
        tcp = (
            f"    stats socket ipv4@127.0.0.1:{self.runtime_port} level admin\n" if self.runtime_port else ""
        )
        return (
            "global\n"
            f"    stats socket {self.runtime_socket} mode 600 level admin\n"
            f"{tcp}"
            "    nbthread 2\n"
            "defaults\n"
            "    mode http\n"
            "    timeout connect 2s\n"
            "    timeout client 30s\n"
            "    timeout server 30s\n"
            "frontend canarypilot\n"
            f"    bind 127.0.0.1:{self.port}\n"
            f"    default_backend {BACKEND}\n"
            f"backend {BACKEND}\n"
            "    balance roundrobin\n"
            f"    server {STABLE_SERVER} {self.stable} weight {256 - self.canary_weight}\n"
            f"    server {CANARY_SERVER} {self.canary} weight {self.canary_weight}\n"
        )

    def start(self, *, timeout: float = 15.0) -> Self:
        binary = require("haproxy")
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "haproxy.cfg"
        config.write_text(self.config())
        self._launch(
            [binary, "-db", "-f", str(config)], log_path=self.workdir / "haproxy.log", timeout=timeout
        )
        return self

    def _ready(self) -> bool:
        return _answers(self.runtime_socket) and _listens(self.port)

    def stop(self) -> None:
        super().stop()
        shutil.rmtree(self._sockdir, ignore_errors=True)


def _answers(path: str) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(1.0)
            sock.connect(path)
            sock.sendall(b"show info\n")
            return bool(sock.recv(64))
    except OSError:
        return False


def _listens(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False
