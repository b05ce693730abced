"""Leader election on a ``coordination.k8s.io/v1`` Lease, and the fence every write passes.

One operator replica holds the Lease and renews it; the others wait for it to lapse.
Expiry is judged the way client-go judges it, by the local clock: a Lease whose
``resourceVersion`` has not moved for ``leaseDurationSeconds`` since this replica first
saw it is free, whatever the holder's wall clock says. The holder counts itself leader
only until ``renew deadline`` after its last successful renewal; ``ensure`` raises
``LeadershipLost`` past that instant, and every write of the operator (status, router,
Deployments, Events) calls it first: a deposed leader never writes again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from canarypilot._exceptions import CanaryPilotError, RouterUnavailable
from canarypilot.model import validate_name
from canarypilot.routing.kubernetes import Conflict, KubeClient, NotFound

log = logging.getLogger("canarypilot.operator")


class LeadershipLost(CanaryPilotError):
    """This replica no longer holds the Lease: stop writing, let the new leader resume."""


def micro_time(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """Holds (or waits for) one Lease.

    >>> # elector = LeaderElector(client, namespace="canarypilot", identity="pod-a")
    >>> # await elector.acquire(); elector.ensure()  # raises LeadershipLost once deposed
    """

    def __init__(
        self,
        client: KubeClient,
        *,
        namespace: str,
        identity: str,
        name: str = "canarypilot-operator",
        duration_seconds: float = 15.0,
        renew_seconds: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if not 0 < renew_seconds < duration_seconds:
            raise ValueError("the renewal period must be shorter than the lease duration")
        self.client = client
        self.namespace = validate_name(namespace, what="lease namespace")
        self.name = validate_name(name, what="lease name")
        self.identity = identity
        self.duration = duration_seconds
        self.renew_every = renew_seconds
        self._monotonic, self._wall = monotonic, wall
        self._valid_until = float("-inf")
        self._seen: tuple[str, float] | None = None  # (resourceVersion, first seen at)

    @property
    def path(self) -> str:
        return f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases/{self.name}"

    def ensure(self) -> None:
        """Raise ``LeadershipLost`` unless this replica still holds the Lease."""
        if self._monotonic() >= self._valid_until:
            raise LeadershipLost(f"lease {self.namespace}/{self.name} is no longer held by {self.identity}")

    @property
    def leader(self) -> bool:
        return self._monotonic() < self._valid_until

    async def acquire(self, *, poll_seconds: float | None = None) -> None:
        """Wait until this replica holds the Lease."""
        while not await self.try_acquire():
            await asyncio.sleep(poll_seconds or self.renew_every)

    async def try_acquire(self) -> bool:
        """One attempt to take or renew the Lease; True when this replica holds it."""
        started = self._monotonic()
        try:
            lease = await self.client.get(self.path)
        except NotFound:
            return await self._write(None, transitions=0, started=started)
        except RouterUnavailable as exc:
            log.warning("lease %s: cannot read it: %s", self.name, exc)
            return False
        spec = lease.get("spec") or {}
        meta = lease.get("metadata") or {}
        version = str(meta.get("resourceVersion", ""))
        holder = spec.get("holderIdentity")
        if holder not in (None, "", self.identity) and not self._lapsed(version, spec):
            return False
        transitions = int(spec.get("leaseTransitions") or 0) + (0 if holder == self.identity else 1)
        return await self._write(lease, transitions=transitions, started=started)

    def _lapsed(self, version: str, spec: dict[str, Any]) -> bool:
        now = self._monotonic()
        if self._seen is None or self._seen[0] != version:
            self._seen = (version, now)
            return False
        duration = float(spec.get("leaseDurationSeconds") or self.duration)
        return now - self._seen[1] >= duration

    async def _write(self, lease: dict[str, Any] | None, *, transitions: int, started: float) -> bool:
        now = micro_time(self._wall())
        spec = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": int(self.duration),
            "renewTime": now,
            "leaseTransitions": transitions,
        }
        try:
            if lease is None:
                body = {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": {**spec, "acquireTime": now},
                }
                await self.client.create(self.path.rsplit("/", 1)[0], body)
            else:
                previous = lease.get("spec") or {}
                acquired = (
                    previous.get("acquireTime") if previous.get("holderIdentity") == self.identity else now
                )
                body = {**lease, "spec": {**previous, **spec, "acquireTime": acquired}}
                await self.client.replace(self.path, body)  # carries the resourceVersion read
        except Conflict:
            return False  # another replica wrote first
        except RouterUnavailable as exc:
            log.warning("lease %s: cannot write it: %s", self.name, exc)
            return False
        # Counted from before the read: the lease is ours for at most `duration` from then.
        self._valid_until = started + self.duration - self.renew_every / 2
        return True

    async def keep(self) -> None:
        """Renew every ``renew_seconds`` until a renewal fails past the deadline."""
        while True:
            await asyncio.sleep(self.renew_every)
            if not await self.try_acquire() and not self.leader:
                raise LeadershipLost(f"could not renew lease {self.namespace}/{self.name}")
