"""The library entry point: ``await canarypilot.analyze(...)``.

It composes a metrics provider with the judge; the CLI, the service and the
controller all reach the judge through the same two calls.
"""

from __future__ import annotations

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
) -> Decision:
    """One decision now.

    >>> # decision = await canarypilot.analyze("payment-api", prometheus="http://localhost:9090")
    >>> # decision.status, decision.weight
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

    async with PrometheusMetrics(settings.prometheus, settings.query) as owned:
        return decide(await owned.snapshot(target), settings)
