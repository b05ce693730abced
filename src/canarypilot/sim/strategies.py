"""The strategies the bench compares, all driven by the same simulated world.

* ``static`` — the article's ladder (10, 25, 50, 100 % with pauses of 60, 90
  and 120 s) gated the way Argo Rollouts gates it when configured *correctly*:
  a background analysis measures every 30 s and fails a metric on its second
  failed measurement (``failureLimit: 1``); a measurement passes when there is
  no data (``isNaN(result) || …``) or the delta is within the SLO (p99 delta
  <= 15 %, error delta <= 2 points). No minimum sample count, no warm-up grace:
  Argo has neither.
* ``flagger`` — Flagger's canary analysis: every interval (1 m) the checks run
  over a 1 m window (request success rate >= 99 %, p99 <= a fixed bound, the
  scenario's SLO); a failed check (no data included) adds to a cumulative count
  and holds the weight; at 5 failed checks the next iteration rolls back; after
  a passing check the weight grows by 10 up to 50, then the canary is promoted
  (its spec copied to the primary, all traffic routed there one interval later).
* ``canarypilot`` — this product's own rollout controller with its default
  policy, unchanged.

These model the tools' documented behaviour; none of their code is used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from canarypilot.clock import Clock
from canarypilot.metrics.base import MetricsProvider
from canarypilot.model import Snapshot, Target
from canarypilot.policy import Settings
from canarypilot.routing.base import Router
from canarypilot.sim.scenario import Scenario
from canarypilot.sim.timeline import MarkKind, Timeline
from canarypilot.sim.world import CanaryTruth, World

if TYPE_CHECKING:
    from canarypilot.rollout import RolloutEvent


@dataclass(frozen=True, slots=True)
class TruthRecord:
    """One tick of canary traffic: when it ended (simulated epoch), at what weight, and
    what its requests were drawn from."""

    end: float
    weight: float
    truth: CanaryTruth


class TruthFeed(Protocol):
    """The true parameters, for the oracle only; no product strategy gets one."""

    scenario: Scenario
    world: World

    def visible(self) -> list[TruthRecord]: ...


@dataclass(slots=True)
class Context:
    """Everything a strategy may touch: the same seams the real controller gets."""

    scenario: Scenario
    target: Target
    clock: Clock
    metrics: MetricsProvider
    router: Router
    timeline: Timeline
    settings: Settings
    truth: TruthFeed | None = None

    def mark(self, kind: MarkKind, weight: float, text: str) -> None:
        self.timeline.add(self.clock.now(), kind, weight, text)


class Strategy(Protocol):
    """One way of running a rollout; ``run`` returns once it promoted or rolled back."""

    name: str

    async def run(self, ctx: Context) -> None: ...


def _value(x: float | None) -> float:
    return math.nan if x is None else x


class StaticLadder:
    """The article's static ladder with a correctly configured Argo-style analysis."""

    name = "static"

    def __init__(
        self,
        steps: tuple[tuple[float, float], ...] = ((10, 60), (25, 90), (50, 120), (100, 0)),
        *,
        interval_seconds: float = 30.0,
        failure_limit: int = 1,
        window_seconds: float = 60.0,
    ) -> None:
        self.steps = steps
        self.interval = interval_seconds
        self.failure_limit = failure_limit
        self.window = window_seconds

    async def run(self, ctx: Context) -> None:
        slo = ctx.settings.slo
        window = ctx.scenario.monitoring.rate_window_seconds or self.window
        failures = {"latency": 0, "errors": 0}
        next_measure = ctx.clock.now() + self.interval
        for weight, pause in self.steps:
            await ctx.router.set_weight(weight)
            if weight >= 100:
                ctx.mark(MarkKind.PROMOTED, weight, "last step reached: rollout complete")
                return
            step_end = ctx.clock.now() + pause
            while next_measure <= step_end:
                await ctx.clock.sleep(next_measure - ctx.clock.now())
                next_measure += self.interval
                snap = await ctx.metrics.snapshot(ctx.target, window_seconds=window)
                latency, errors = _deltas(snap)
                failed = []
                # isNaN(result) || result <= threshold: no data passes.
                if not math.isnan(latency) and latency > slo.max_latency_delta:
                    failures["latency"] += 1
                    failed.append(f"p99 delta {latency:+.1%}")
                if not math.isnan(errors) and errors > slo.max_error_delta:
                    failures["errors"] += 1
                    failed.append(f"error delta {errors * 100:+.2f} pts")
                verdict = "failed: " + ", ".join(failed) if failed else "successful"
                ctx.mark(
                    MarkKind.ANALYSIS,
                    weight,
                    f"measurement {verdict} (p99 delta {latency:+.1%}, error delta {errors * 100:+.2f} pts; "
                    f"failures latency {failures['latency']}, errors {failures['errors']})",
                )
                if max(failures.values()) > self.failure_limit:
                    ctx.mark(
                        MarkKind.ROLLBACK, weight, f"analysis failed (failureLimit {self.failure_limit})"
                    )
                    await ctx.router.set_weight(0)
                    return
            await ctx.clock.sleep(step_end - ctx.clock.now())


class FlaggerAnalysis:
    """Flagger's progressive canary: step weight, max weight, cumulative failed checks."""

    name = "flagger"

    def __init__(
        self,
        *,
        step_weight: float = 10,
        max_weight: float = 50,
        interval_seconds: float = 60.0,
        threshold: int = 5,
        min_success_rate: float = 0.99,
    ) -> None:
        self.step = step_weight
        self.max_weight = max_weight
        self.interval = interval_seconds
        self.threshold = threshold
        self.min_success_rate = min_success_rate

    async def run(self, ctx: Context) -> None:
        bound = ctx.scenario.slo_latency_ms / 1000
        failed = 0
        weight = self.step
        await ctx.router.set_weight(weight)
        while True:
            await ctx.clock.sleep(self.interval)
            if failed >= self.threshold:
                ctx.mark(MarkKind.ROLLBACK, weight, f"{failed} failed checks (threshold {self.threshold})")
                await ctx.router.set_weight(0)
                return
            snap = await ctx.metrics.snapshot(ctx.target, window_seconds=self.interval)
            problems = self._check(snap, bound)
            if problems:
                failed += 1
                ctx.mark(MarkKind.ANALYSIS, weight, f"check failed ({failed}/{self.threshold}): {problems}")
                continue
            ctx.mark(MarkKind.ANALYSIS, weight, "checks passed")
            if weight < self.max_weight:
                weight = min(self.max_weight, weight + self.step)
                await ctx.router.set_weight(weight)
                continue
            # Promotion: the canary's spec goes to the primary, which rolls out; all
            # traffic moves to the (new) primary on the next iteration.
            await ctx.clock.sleep(self.interval)
            await ctx.router.set_weight(100)
            ctx.mark(MarkKind.PROMOTED, 100, "promotion completed: primary runs the new version")
            return

    def _check(self, snap: Snapshot, bound: float) -> str:
        errors = _value(snap.canary.error_rate)
        p99 = _value(snap.canary.p99_seconds)
        if math.isnan(errors) or math.isnan(p99):
            return "no values found (canary not receiving traffic?)"
        problems = []
        if 1 - errors < self.min_success_rate:
            problems.append(f"success rate {1 - errors:.2%} < {self.min_success_rate:.0%}")
        if p99 > bound:
            problems.append(f"p99 {p99 * 1000:.0f} ms > {bound * 1000:.0f} ms")
        return ", ".join(problems)


def _deltas(snap: Snapshot) -> tuple[float, float]:
    """Latency and error deltas as Argo's PromQL would compute them (NaN without data)."""
    s99, c99 = _value(snap.stable.p99_seconds), _value(snap.canary.p99_seconds)
    latency = (c99 - s99) / s99 if s99 and not math.isnan(s99) else math.nan
    errors = _value(snap.canary.error_rate) - _value(snap.stable.error_rate)
    return latency, errors


class CanaryPilot:
    """This product: the rollout controller with the default policy, in virtual time."""

    name = "canarypilot"

    async def run(self, ctx: Context) -> None:
        from canarypilot.rollout import RolloutController, RolloutSpec

        spec = RolloutSpec(name=f"sim-{ctx.scenario.name}"[:200], target=ctx.target, settings=ctx.settings)
        controller = RolloutController(
            spec,
            metrics=ctx.metrics,
            router=ctx.router,
            clock=ctx.clock,
            on_event=lambda event: _mark_event(ctx, event),
        )
        await controller.run()


def _mark_event(ctx: Context, event: RolloutEvent) -> None:
    """Turn the controller's audit events into timeline marks."""
    from canarypilot.rollout import EventKind, Phase

    data = event.data
    if event.kind is EventKind.VERDICT:
        reasons = "; ".join(data.get("reasons") or [])
        action = data.get("action")
        if action == "rollback":
            ctx.timeline.add(event.at, MarkKind.ROLLBACK, event.weight, f"rollback: {reasons}")
        else:
            ctx.timeline.add(event.at, MarkKind.ANALYSIS, event.weight, f"{action}: {reasons}")
    elif event.kind is EventKind.PHASE:
        if event.phase is Phase.PROMOTED:
            ctx.timeline.add(event.at, MarkKind.PROMOTED, event.weight, "promoted to 100%")
        elif event.phase.final and ctx.timeline.rollback_at is None:
            reasons = "; ".join(data.get("reasons") or [])
            ctx.timeline.add(event.at, MarkKind.ROLLBACK, event.weight, f"{event.phase.value}: {reasons}")
    elif event.kind is EventKind.DECISION:
        ctx.timeline.add(event.at, MarkKind.NOTE, event.weight, f"next weight {data.get('weight', 0):g}%")
