"""The library entry point: ``await canarypilot.analyze(...)``, and the one pipeline behind it.

Every entry point takes the same two calls: a provider builds the step's history
(``MetricsProvider.history``: per-slice counts since the last weight change), and
``verdict`` hands it to the engine (``analysis.decide``). ``analyze``, the Argo gate,
the controller and the demo therefore give the same verdict on the same data.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from canarypilot.analysis import decide, judge
from canarypilot.metrics.base import MetricsProvider
from canarypilot.metrics.history import Slicing
from canarypilot.model import Decision, Snapshot, StepHistory, Target, Verdict
from canarypilot.policy import Settings

__all__ = ["analyze", "decide", "judge_snapshot", "step", "verdict"]


def verdict(history: StepHistory, settings: Settings) -> Verdict:
    """The verdict on one step's history: ``analysis.decide`` with the settings.

    >>> # verdict(await provider.history(target, weight=20, slicing=slicing, since=t0), settings)
    """
    return decide(history, settings)


def judge_snapshot(snapshot: Snapshot, settings: Settings) -> Decision:
    """The v1 judge's point-estimate decision on one snapshot (no evidence, no history):
    kept for callers that hold only a snapshot; every entry point uses ``verdict``."""
    return judge(snapshot, slo=settings.slo, interpolation=settings.interpolation)


async def step(
    provider: MetricsProvider,
    target: Target,
    settings: Settings,
    *,
    weight: float | None = None,
    since: float | None = None,
    at: float | None = None,
) -> Verdict:
    """Fetch one step's history from ``provider`` and decide on it."""
    history = await provider.history(
        target, weight=weight, slicing=Slicing.from_settings(settings), since=since, at=at
    )
    return verdict(history, settings)


async def analyze(
    service: str,
    *,
    prometheus: str | None = None,
    canary_version: str | None = None,
    stable_version: str | None = None,
    settings: Settings | None = None,
    provider: MetricsProvider | None = None,
    at: float | None = None,
    weight: float | None = None,
    since: float | None = None,
) -> Decision:
    """One decision now (or at Unix time ``at``), from Prometheus or from ``provider``.

    With ``weight`` or ``since`` the step judged is the canary's current one: it began at
    ``since`` (Unix time) at ``weight`` percent, or where the data shows the canary's share
    of requests last changed (``metrics.history.observed_since``), and ``analysis.decide``
    judges it, as the gate and the controller do. Without either, one window is judged
    with the v1 judge (``judge_snapshot``), as before.

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
    if weight is None and since is None:
        # Not yet on the step pipeline (issue 10, left undone): one window, the v1 judge.
        if provider is not None:
            return judge_snapshot(await provider.snapshot(target), settings)
        from canarypilot.metrics.prometheus import PrometheusMetrics

        clock: Callable[[], float] = time.time if at is None else (lambda: at)
        async with PrometheusMetrics(settings.prometheus, settings.query, now=clock) as owned:
            return judge_snapshot(await owned.snapshot(target), settings)
    if provider is not None:
        return (await step(provider, target, settings, weight=weight, since=since, at=at)).decision
    from canarypilot.metrics.prometheus import PrometheusMetrics

    now: Callable[[], float] = time.time if at is None else (lambda: at)
    async with PrometheusMetrics(settings.prometheus, settings.query, now=now) as owned:
        return (await step(owned, target, settings, weight=weight, since=since)).decision
