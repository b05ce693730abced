"""HAProxy as the traffic router, through its runtime API (no reload, no restart).

Two servers of one ``balance roundrobin`` backend carry the stable and the
canary version. A weight of ``w`` percent becomes server weights that add up
to 256 (HAProxy's maximum): ``canary = round(w * 2.56)``, ``stable = 256 -
canary``, so the resolution is 0.4 percentage points. Both weights are set in
one runtime-API line, then read back: ``set_weight`` returns only once HAProxy
reports the new split.

The runtime API listens on a unix socket (``/run/haproxy/admin.sock``) or a
TCP address (``tcp://127.0.0.1:9999``); it needs ``level admin``.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from canarypilot._exceptions import ConfigError, RouterError, RouterUnavailable

#: HAProxy's largest server weight; the two weights always add up to it.
TOTAL_WEIGHT = 256

_IDENTIFIER = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")
_MAX_REPLY = 64 * 1024


def _identifier(value: str, what: str) -> str:
    # Names are pasted into runtime-API commands: refuse anything that could add a command.
    if not _IDENTIFIER.fullmatch(value):
        raise ConfigError(f"invalid HAProxy {what} {value!r}: use letters, digits and _ . : -")
    return value


@dataclass(frozen=True, slots=True)
class RuntimeAddress:
    """Where the runtime API listens: a unix socket path, or a host and port."""

    path: str | None = None
    host: str | None = None
    port: int | None = None

    @classmethod
    def parse(cls, text: str) -> RuntimeAddress:
        """``/run/haproxy/admin.sock``, ``unix:///…``, ``tcp://127.0.0.1:9999`` or ``127.0.0.1:9999``."""
        if text.startswith("unix://"):
            return cls(path=text[len("unix://") :])
        if text.startswith("/"):
            return cls(path=text)
        host, sep, port = text.removeprefix("tcp://").rpartition(":")
        if not sep or not port.isdigit() or not host:
            raise ConfigError(f"HAProxy runtime API address {text!r}: use a socket path or tcp://host:port")
        return cls(host=host.strip("[]"), port=int(port))

    def __str__(self) -> str:
        return self.path if self.path is not None else f"tcp://{self.host}:{self.port}"


class HAProxyRouter:
    """A ``Router`` over HAProxy's runtime API.

    >>> router = HAProxyRouter("/run/haproxy/admin.sock", backend="app",
    ...                        stable_server="stable", canary_server="canary")
    >>> # await router.set_weight(12.5)
    """

    def __init__(
        self,
        address: str,
        *,
        backend: str,
        stable_server: str = "stable",
        canary_server: str = "canary",
        timeout_seconds: float = 2.0,
    ) -> None:
        self.address = RuntimeAddress.parse(address)
        self.backend = _identifier(backend, "backend")
        self.stable_server = _identifier(stable_server, "server")
        self.canary_server = _identifier(canary_server, "server")
        if self.stable_server == self.canary_server:
            raise ConfigError("the stable and the canary server must differ")
        self.timeout_seconds = timeout_seconds

    @staticmethod
    def server_weights(weight: float) -> tuple[int, int]:
        """(stable, canary) server weights for a canary percentage.

        >>> HAProxyRouter.server_weights(5)
        (243, 13)
        """
        if not 0 <= weight <= 100:
            raise RouterError(f"weight {weight} outside 0..100")
        canary = round(weight * TOTAL_WEIGHT / 100)
        return TOTAL_WEIGHT - canary, canary

    async def set_weight(self, weight: float) -> None:
        stable, canary = self.server_weights(weight)
        # One line, two commands: HAProxy applies them back to back.
        reply = await self.command(
            f"set server {self.backend}/{self.stable_server} weight {stable}; "
            f"set server {self.backend}/{self.canary_server} weight {canary}"
        )
        if reply.strip():
            raise RouterError(f"HAProxy refused the weight change: {reply.strip()[:300]}")
        confirmed = await self.get_weight()
        if abs(confirmed - canary * 100 / TOTAL_WEIGHT) > 0.01:
            raise RouterUnavailable(f"HAProxy reports {confirmed:g}% after setting {weight:g}%")

    async def get_weight(self) -> float:
        reply = await self.command(
            f"get weight {self.backend}/{self.stable_server}; get weight {self.backend}/{self.canary_server}"
        )
        current = re.findall(r"^(\d+) \(initial \d+\)$", reply, re.MULTILINE)
        if len(current) != 2:
            raise RouterError(f"unexpected HAProxy answer to 'get weight': {reply.strip()[:300]!r}")
        stable, canary = int(current[0]), int(current[1])
        if stable + canary == 0:
            raise RouterError("both HAProxy servers have weight 0: no traffic is served")
        return round(canary * 100 / (stable + canary), 3)

    async def reset(self) -> None:
        await self.set_weight(0.0)

    async def command(self, line: str) -> str:
        """Send one runtime-API line and return the whole reply."""
        if "\n" in line:
            raise ConfigError("a runtime API command is one line")
        try:
            async with asyncio.timeout(self.timeout_seconds):
                if self.address.path is not None:
                    reader, writer = await asyncio.open_unix_connection(self.address.path)
                else:
                    reader, writer = await asyncio.open_connection(self.address.host, self.address.port)
                try:
                    writer.write(line.encode() + b"\n")
                    await writer.drain()
                    reply = await reader.read(_MAX_REPLY)
                    chunks = [reply]
                    while reply:
                        reply = await reader.read(_MAX_REPLY)
                        chunks.append(reply)
                finally:
                    writer.close()
                    await writer.wait_closed()
        except TimeoutError as exc:
            raise RouterUnavailable(f"HAProxy runtime API {self.address} did not answer in time") from exc
        except OSError as exc:
            raise RouterUnavailable(
                f"HAProxy runtime API {self.address} unreachable: {exc.strerror or exc}"
            ) from exc
        return b"".join(chunks).decode(errors="replace")
