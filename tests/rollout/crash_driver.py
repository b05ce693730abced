"""A rollout process for the crash test: real clock, real HAProxy, healthy scripted metrics.

``python -m tests.rollout.crash_driver STATE_DIR RUNTIME_SOCKET`` starts or resumes
the rollout stored in STATE_DIR; the test SIGKILLs it at random moments.
"""

from __future__ import annotations

import asyncio
import sys

from canarypilot.clock import SystemClock
from canarypilot.local.haproxy import BACKEND
from canarypilot.rollout import Phase, RolloutController, StateStore
from canarypilot.routing.haproxy import HAProxyRouter
from tests.rollout.fakes import ScriptedMetrics, make_spec

SPEC = make_spec(
    rollout={
        "pauses_seconds": [0.6, 0.6, 0.6, 0.6, 0.6],
        "scrape_lag_seconds": 0.0,
        "min_window_seconds": 0.2,
        "control_poll_seconds": 0.05,
        "max_growth_factor": 2.0,
    },
    query={"slice_seconds": 0.1, "scrape_interval_seconds": 0.05},
    scrape={"interval_seconds": 0.05},
)


async def main(state_dir: str, socket: str) -> int:
    clock = SystemClock()
    with StateStore(state_dir) as store:
        outcome = await RolloutController(
            SPEC,
            metrics=ScriptedMetrics(clock),  # type: ignore[arg-type]
            router=HAProxyRouter(socket, backend=BACKEND),
            clock=clock,
            store=store,
        ).run()
    return 0 if outcome.phase is Phase.PROMOTED else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main(sys.argv[1], sys.argv[2])))
