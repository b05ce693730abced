"""The operator's leader election on a real API server's coordination.k8s.io/v1 Lease: one
holder at a time, a lapsed Lease taken over after its duration, and the deposed holder fenced."""

from __future__ import annotations

import asyncio
import time

import pytest

from canarypilot.operator import LeaderElector, LeadershipLost
from canarypilot.routing.kubernetes import KubeClient

pytestmark = pytest.mark.integration

DURATION = 2.0


def elector(client: KubeClient, namespace: str, who: str) -> LeaderElector:
    return LeaderElector(
        client, namespace=namespace, identity=who, duration_seconds=DURATION, renew_seconds=0.5
    )


async def test_one_holder_at_a_time_and_a_lapsed_lease_is_taken_over(
    client: KubeClient, namespace: str
) -> None:
    a, b = elector(client, namespace, "a"), elector(client, namespace, "b")
    assert await a.try_acquire()
    a.ensure()
    assert not await b.try_acquire()
    assert await a.try_acquire()  # a renewal: a keeps it
    with pytest.raises(LeadershipLost):
        b.ensure()

    # `a` stops renewing (a crash): `b` takes over once the Lease has not moved for its duration.
    stopped = time.monotonic()
    await asyncio.wait_for(b.acquire(poll_seconds=0.1), timeout=10)
    waited = time.monotonic() - stopped
    assert DURATION <= waited < DURATION + 1.5, waited
    b.ensure()
    lease = await client.get(b.path)
    assert lease["spec"]["holderIdentity"] == "b" and lease["spec"]["leaseTransitions"] == 1

    # The old holder's own deadline has passed: every write it would make is refused.
    with pytest.raises(LeadershipLost):
        a.ensure()
    assert not await a.try_acquire()  # and it cannot take the Lease back while b renews
