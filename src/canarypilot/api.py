"""The library entry point: ``await canarypilot.analyze(...)``.

It composes a metrics provider with the judge; the CLI, the service and the
controller all reach the judge through the same two calls.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from canarypilot.analysis import judge
from canarypilot.metrics.base import MetricsProvider
from canarypilot.model import Decision, Snapshot, Target
from canarypilot.policy import Settings


def decide(snapshot: Snapshot, settings: Settings) -> Decision:
    """Judge one snapshot with the settings' SLO and interpolation policies."""
    return judge(snapshot, slo=settings.slo, interpolation=settings.interpolation)


async def analyze(
    service: str,
    *,
    prometheus: str | None = None,
    canary_version: str | None = None,
    stable_version: str | None = None,
    settings: Settings | None = None,
    provider: MetricsProvider | None = None,
    at: float | None = None,
) -> Decision:
    """One decision now (or at Unix time ``at``), from Prometheus or from ``provider``.

    ``at`` applies to Prometheus (a post-mortem: what would it have decided then?);
    a ``provider`` given here measures on its own clock.

    ``settings`` default to ``Settings()``: the article's numbers, no environment
    (use ``load_settings()`` for the file/environment/flags layering of the CLI).
    Raises ``ConfigError`` for a bad name or setting, ``MetricsUnavailable`` when
    the backend cannot answer, ``QueryError`` when it rejects a query; missing
    data is a ``hold`` decision, never an exception and never ``proceed``.

    >>> # decision = await canarypilot.analyze("payment-api", prometheus="http://localhost:9090")
    >>> # decision.status.value, decision.weight
    >>> # ('proceed', 62.6)
    """
    settings = settings or Settings()
    if prometheus:
        settings = settings.merged({"prometheus": {"url": prometheus}})
    target = Target(
        service,
        canary_version or settings.query.canary_version,
        stable_version or settings.query.stable_version,
    )
    if provider is not None:
        return decide(await provider.snapshot(target), settings)
    from canarypilot.metrics.prometheus import PrometheusMetrics

    now: Callable[[], float] = time.time if at is None else (lambda: at)
    async with PrometheusMetrics(settings.prometheus, settings.query, now=now) as owned:
        return decide(await owned.snapshot(target), settings)
