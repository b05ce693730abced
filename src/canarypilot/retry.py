"""The one way canarypilot retries a call: only when the error says "retry later".

The exception tree (:mod:`canarypilot._exceptions`) decides, not the caller:

* a :class:`TemporaryError` is retried, after its ``delay`` when the backend named
  one (``Retry-After``), else after the caller's exponential backoff;
* a :class:`PermanentError` (a rejected query, a refused router change) and
  anything else is raised at once: sending it again cannot help;
* the retries stop at ``retries`` or when the next wait would end past the
  ``deadline``, so a caller with a timeout of its own gets an answer inside it.

All waiting goes through the injected clock, so loops built on this run in
virtual time in the tests and the simulator.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from canarypilot._exceptions import CanaryPilotError, TemporaryError
from canarypilot.clock import Clock

T = TypeVar("T")

#: Told of every failure: the error, which attempt failed (from 1), and whether it was the last.
OnFailure = Callable[[CanaryPilotError, int, bool], None]


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff: ``first``, then ``factor`` times longer each retry, each
    wait spread by ± ``jitter`` of itself (so many clients do not retry in step).

    >>> Backoff(0.2).delay(0), Backoff(0.2).delay(2)
    (0.2, 0.8)
    """

    first: float
    factor: float = 2.0
    jitter: float = 0.0

    def delay(self, retry: int, rng: random.Random | None = None) -> float:
        base = self.first * self.factor**retry
        if not self.jitter:
            return base
        return base * (rng or random).uniform(1 - self.jitter, 1 + self.jitter)


async def retrying(
    call: Callable[[], Awaitable[T]],
    *,
    clock: Clock,
    retries: int,
    backoff: Backoff,
    deadline: float | None = None,
    on_failure: OnFailure | None = None,
) -> T:
    """``await call()``, retried on :class:`TemporaryError` at most ``retries`` times.

    ``deadline`` is a ``clock.now()`` instant: no wait is started that would end
    after it (the last error is raised instead). ``on_failure`` is told of every
    failure that is one of ours, permanent ones included, before it is retried or raised.
    """
    attempt = 0
    while True:
        try:
            return await call()
        except CanaryPilotError as exc:
            wait = _wait_for(exc, attempt, backoff)
            gave_up = (
                wait is None or attempt >= retries or (deadline is not None and clock.now() + wait > deadline)
            )
            if on_failure is not None:
                on_failure(exc, attempt + 1, gave_up)
            if gave_up:
                raise
        assert wait is not None
        await clock.sleep(wait)
        attempt += 1


def _wait_for(exc: CanaryPilotError, attempt: int, backoff: Backoff) -> float | None:
    """How long to wait before retrying after ``exc``; ``None``: do not retry."""
    if not isinstance(exc, TemporaryError):
        return None
    return exc.delay if exc.delay is not None else backoff.delay(attempt)
