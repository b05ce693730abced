"""The ``argo`` strategy: the Rollout and gate that ``render argo`` writes, run the way
Argo Rollouts runs them, each measurement answered by the product's own gate code.

Nothing of the ladder or the template is restated here: both are read from
``render_argo``'s output for the policy under test (its ``setWeight`` steps, its
inline ``analysis`` steps with their ``target-weight`` argument, and each metric's
``initialDelay``, ``interval``, ``count``, ``failureLimit``, ``inconclusiveLimit``
and conditions). Argo's rules (DESIGN.md, "Contracts", and what Argo v1.7.2's own
analysis code does in tests/contract/argo):

* a measurement with only a ``failureCondition`` is Failed when it holds, else
  Successful; with both conditions it is Failed if the failure condition holds,
  Successful if the success condition does, Inconclusive if neither;
* a metric takes ``count`` measurements, the first after ``initialDelay``, then one
  per ``interval``; it is Failed as soon as ``failed > failureLimit`` (the contract
  test's rendered-gate case fails on the second of five guard measurements) and
  Inconclusive once ``inconclusive > inconclusiveLimit``;
* either ends the run at once: Failed aborts the rollout (all traffic to stable);
  Inconclusive pauses it for a person, which a simulation never sends, so the
  release stays undecided;
* after the last step the rollout is promoted (100 % with no ``setWeight``).

The gate is called in-process (``answer``) on a snapshot from the simulated
Prometheus, with no HTTP in between; the simulated provider never fails, so
``consecutiveErrorLimit`` never comes into play.
"""

from __future__ import annotations

import heapq
import re
from dataclasses import dataclass
from typing import Any

from canarypilot._exceptions import ConfigError
from canarypilot.metrics.history import Slicing
from canarypilot.model import StepHistory
from canarypilot.policy import Settings
from canarypilot.sim.strategies import Context
from canarypilot.sim.timeline import MarkKind

_CONDITION = re.compile(r'\s*result\s*==\s*"([a-z_]+)"\s*')
_DURATION = re.compile(r"(\d+)(s|m|h)")
_UNITS = {"s": 1, "m": 60, "h": 3600}


def answer(history: StepHistory, settings: Settings, weight: float, target_weight: float) -> dict[str, str]:
    """What ``/analyze?...&weight=W&target_weight=N`` answers for ``history``: the seam to
    the product's gate (the fields Argo's jsonPaths read)."""
    from canarypilot.api import verdict
    from canarypilot.service.app import gate

    judged = verdict(history, settings)
    return {"status": judged.action.value, "gate": gate(judged, weight, target_weight, settings)}


@dataclass(frozen=True, slots=True)
class Metric:
    """One metric of the AnalysisTemplate, as Argo reads it."""

    name: str
    json_field: str
    initial_delay: float
    interval: float
    count: int
    failure_limit: int
    inconclusive_limit: int
    success: str | None
    failure: str | None

    def assess(self, value: str) -> str:
        if self.failure is not None and value == self.failure:
            return "Failed"
        if self.success is None:
            return "Successful"
        if value == self.success:
            return "Successful"
        return "Failed" if self.failure is None else "Inconclusive"


def _seconds(text: str | None) -> float:
    if not text:
        return 0.0
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ConfigError(f"argo strategy: cannot read the duration {text!r}")
    return float(sum(int(n) * _UNITS[u] for n, u in parts))


def _condition(text: str | None) -> str | None:
    if text is None:
        return None
    match = _CONDITION.fullmatch(text)
    if match is None:
        raise ConfigError(
            f'argo strategy: only conditions of the form result == "value" are modelled: {text!r}'
        )
    return match.group(1)


def read_template(template: dict[str, Any]) -> list[Metric]:
    metrics = []
    for raw in template["spec"]["metrics"]:
        path = raw["provider"]["web"]["jsonPath"]
        field = re.fullmatch(r"\{\$\.([a-z_]+)\}", path)
        if field is None:
            raise ConfigError(f"argo strategy: cannot read the jsonPath {path!r}")
        metrics.append(
            Metric(
                name=raw["name"],
                json_field=field.group(1),
                initial_delay=_seconds(raw.get("initialDelay")),
                interval=_seconds(raw.get("interval")),
                count=int(raw.get("count", 1)),
                failure_limit=int(raw.get("failureLimit", 0)),
                inconclusive_limit=int(raw.get("inconclusiveLimit", 0)),
                success=_condition(raw.get("successCondition")),
                failure=_condition(raw.get("failureCondition")),
            )
        )
    return metrics


def read_rollout(settings: Settings, service: str) -> tuple[list[tuple[str, float]], list[Metric]]:
    """The rendered Rollout's steps (``("weight", w)`` or ``("analysis", target)``) and gate."""
    from canarypilot.render.argo import GATE_TEMPLATE, ArgoOptions, render_argo

    docs = render_argo(ArgoOptions(service=service, image="sim:1"), settings)
    rollout = next(d for d in docs if d["kind"] == "Rollout")
    template = next(
        d for d in docs if d["kind"] == "AnalysisTemplate" and d["metadata"]["name"] == GATE_TEMPLATE
    )
    steps: list[tuple[str, float]] = []
    for step in rollout["spec"]["strategy"]["canary"]["steps"]:
        if "setWeight" in step:
            steps.append(("weight", float(step["setWeight"])))
        elif "analysis" in step:
            args = {a["name"]: a.get("value") for a in step["analysis"].get("args", [])}
            steps.append(("analysis", float(args["target-weight"])))
        else:
            raise ConfigError(f"argo strategy: step {sorted(step)} is not modelled")
    return steps, read_template(template)


class ArgoGate:
    """Argo Rollouts running the rendered ladder, gated by the rendered template."""

    name = "argo"

    def __init__(self) -> None:
        self._cached: tuple[float, StepHistory] | None = None

    async def _history(self, ctx: Context, weight: float) -> StepHistory:
        """The service's cache: one history answers every request of ``cache_ttl_seconds``
        (the guard and the gate measure at the same moment: one set of queries). The step's
        start is read from the data, as the stateless gate does."""
        now = ctx.clock.now()
        if self._cached is None or now - self._cached[0] >= ctx.settings.service.cache_ttl_seconds:
            slicing = Slicing.from_settings(ctx.settings)
            history = await ctx.metrics.history(ctx.target, weight=max(weight, 0.1), slicing=slicing)
            self._cached = (now, history)
        return self._cached[1]

    async def run(self, ctx: Context) -> None:
        steps, metrics = read_rollout(ctx.settings, ctx.target.service)
        weight = 0.0
        for kind, value in steps:
            if kind == "weight":
                weight = value
                await ctx.router.set_weight(weight)
                continue
            phase = await self._analysis_run(ctx, metrics, weight, value)
            if phase in ("Failed", "Error"):
                ctx.mark(MarkKind.ROLLBACK, weight, f"AnalysisRun for {value:g}% {phase}: rollout aborted")
                await ctx.router.set_weight(0)
                return
            if phase == "Inconclusive":
                # Paused for a person, who never comes: the canary keeps its weight to the end.
                ctx.mark(MarkKind.NOTE, weight, f"AnalysisRun for {value:g}% Inconclusive: rollout paused")
                return
        await ctx.router.set_weight(100)
        ctx.mark(MarkKind.PROMOTED, 100, "last step done: Argo promotes the canary")

    async def _analysis_run(self, ctx: Context, metrics: list[Metric], weight: float, target: float) -> str:
        start = ctx.clock.now()
        queue: list[tuple[float, int, int]] = []  # (time, metric index, measurement number)
        for i, metric in enumerate(metrics):
            heapq.heappush(queue, (start + metric.initial_delay, i, 1))
        failed = [0] * len(metrics)
        inconclusive = [0] * len(metrics)
        while queue:
            at, i, n = heapq.heappop(queue)
            await ctx.clock.sleep(at - ctx.clock.now())
            metric = metrics[i]
            history = await self._history(ctx, weight)
            value = answer(history, ctx.settings, weight, target)[metric.json_field]
            result = metric.assess(value)
            failed[i] += result == "Failed"
            inconclusive[i] += result == "Inconclusive"
            ctx.mark(MarkKind.ANALYSIS, weight, f"{metric.name} #{n} for {target:g}%: {value!r} -> {result}")
            # A failed or inconclusive metric ends the whole run at once (Argo terminates
            # the other metrics); otherwise the run succeeds when every metric has its count.
            if failed[i] > metric.failure_limit:
                return "Failed"
            if inconclusive[i] > metric.inconclusive_limit:
                return "Inconclusive"
            if n < metric.count:
                heapq.heappush(queue, (at + metric.interval, i, n + 1))
        return "Successful"
