"""The library entry point: ``await canarypilot.analyze(...)``.

It composes a metrics provider with the judge; the CLI, the service and the
controller all reach the judge through the same two calls.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from canarypilot.analysis import BreakerState, assess, judge, weigh
from canarypilot.metrics.base import MetricsProvider
from canarypilot.metrics.history import summarize
from canarypilot.model import Action, Decision, Slice, Snapshot, Status, StepHistory, Target, Verdict
from canarypilot.policy import Settings


def decide(snapshot: Snapshot, settings: Settings) -> Decision:
    """Judge one snapshot with the settings' SLO and interpolation policies."""
    return judge(snapshot, slo=settings.slo, interpolation=settings.interpolation)


def verdict(history: StepHistory, settings: Settings) -> Verdict:
    """The one decision every entry point takes: the step's history in, a verdict out.

    ``analyze``, the Argo gate, the controller and the demo all call this, so the same
    data gives the same verdict whoever asks, after any restart, on any replica.

    Until the sequential engine lands (``analysis.decide``), this replays the judge,
    the evidence and the breaker over the step: its slices cut into separate windows
    (each holding ``rollout.window_tail_requests`` canary requests beyond the quantile,
    or twice ``rollout.min_window_seconds`` long), oldest first, a new one starting where the warm-up
    ends (the breaker's warm-up rule applies to the windows before); then the whole step for the safe weight.
    """
    slo, quantile = settings.slo, settings.query.quantile
    state = BreakerState()
    last: Verdict | None = None
    warm = history.since + settings.breaker.warmup_seconds
    # A slice belongs to the warm-up when most of it lies there.
    in_warmup = [s for s in history.slices if (s.start + s.end) / 2 < warm]
    after = [s for s in history.slices if (s.start + s.end) / 2 >= warm]
    chunks = [(c, c[0].start) for c in _windows(in_warmup, settings)]
    chunks += [(c, max(c[0].start, warm)) for c in _windows(after, settings)]
    for chunk, start in chunks:
        snapshot = summarize(
            history.target, chunk, since=chunk[0].start, at=chunk[-1].end, quantile=quantile,
            age=history.snapshot.age_seconds,
        )  # fmt: skip
        decision = decide(snapshot, settings)
        last, state = assess(
            decision, state, now=chunk[-1].end, last_weight_change=history.since, policy=settings.breaker,
            evidence=weigh(decision, quantile=quantile, slo=slo), window_start=start,
        )  # fmt: skip
        if last.action is Action.ROLLBACK:
            return last
    whole = decide(history.snapshot, settings)
    if not history.slices:
        reason = "no complete time slice since the weight change yet: nothing to judge"
        return Verdict(Action.HOLD, None, whole, (*whole.reasons, reason))
    if last is not None and last.action is Action.HOLD and whole.status is not Status.HOLD:
        return Verdict(Action.HOLD, None, whole, last.reasons, last.consecutive_violations)
    if whole.status is Status.ROLLBACK:
        # A violation on the whole step that no separate window confirmed (or only in the
        # warm-up): hold and keep watching.
        return Verdict(Action.HOLD, None, whole, (*whole.reasons, "not confirmed after the warm-up: holding"))
    action = Action.PROCEED if whole.status is Status.PROCEED else Action.HOLD
    return Verdict(action, whole.weight, whole, whole.reasons, state.consecutive)


def _windows(slices: Sequence[Slice], settings: Settings) -> list[list[Slice]]:
    """Consecutive, separate windows of slices, each long enough to judge."""
    wanted = settings.rollout.window_tail_requests / (1.0 - settings.query.quantile)
    longest = min(settings.query.window_seconds, 2 * settings.rollout.min_window_seconds)
    out: list[list[Slice]] = []
    current: list[Slice] = []
    served = 0.0
    for piece in slices:
        current.append(piece)
        served += piece.canary.requests or 0.0
        if served >= wanted or piece.end - current[0].start >= longest - 1e-9:
            out.append(current)
            current, served = [], 0.0
    if current:
        out.append(current)
    return out


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
