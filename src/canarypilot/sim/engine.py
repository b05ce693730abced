"""Virtual time: one scenario, one strategy, one seed, replayed in milliseconds.

The strategy (the product's own controller, or a competitor) gets a clock, a
router and a metrics provider, exactly the seams a real rollout gets. The
clock's ``sleep(dt)`` is where the world moves: it draws the requests of
``dt`` seconds at the router's current weight, one tick per second, scrapes
the counters at the scrape interval and publishes each scrape after the scrape
lag. Nothing waits for real, and with the same seed the same run comes out.

The run ends when the strategy has promoted the canary or has the traffic back
on stable, or when the scenario's duration runs out. A bad canary that was
promoted keeps serving until the end of the scenario, so its bad requests are
counted over the same horizon whatever the strategy.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from typing import Any

from canarypilot._exceptions import RouterError
from canarypilot.metrics.history import Slicing
from canarypilot.model import Snapshot, StepHistory, Target
from canarypilot.policy import Settings
from canarypilot.sim.catalog import make_strategy
from canarypilot.sim.pipeline import MetricsPipeline
from canarypilot.sim.scenario import Scenario
from canarypilot.sim.strategies import Context, TruthRecord
from canarypilot.sim.timeline import Mark, MarkKind, Outcome, Timeline
from canarypilot.sim.world import World

#: Simulated time starts here (any fixed epoch would do; this one reads well in logs).
EPOCH = 1_700_000_000.0
#: Longest stretch of traffic drawn at once (ticks also end on every scrape).
TICK_SECONDS = 5.0
#: Once the strategy is done only the bad-request count matters: coarser ticks will do.
UNOBSERVED_TICK_SECONDS = 15.0


class HorizonReached(BaseException):
    """Raised out of ``sleep`` when the scenario's duration is over.

    A ``BaseException`` so that no ``except Exception`` in a strategy can swallow it.
    """


@dataclass(frozen=True, slots=True)
class RunResult:
    """What one run measured; times are seconds since the rollout started."""

    scenario: str
    family: str
    strategy: str
    seed: int
    expect: str
    outcome: Outcome
    onset: float | None
    rollback_at: float | None
    restored_at: float | None
    promoted_at: float | None
    bad_requests: int
    canary_requests: int
    simulated_seconds: float
    marks: tuple[Mark, ...] = field(default=(), compare=False)

    @property
    def time_to_detect(self) -> float | None:
        if self.rollback_at is None or self.onset is None or self.rollback_at < self.onset:
            return None
        return self.rollback_at - self.onset

    @property
    def time_to_restore(self) -> float | None:
        if self.rollback_at is None or self.restored_at is None:
            return None
        return self.restored_at - self.rollback_at

    def to_dict(self, *, with_marks: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "scenario": self.scenario,
            "family": self.family,
            "strategy": self.strategy,
            "seed": self.seed,
            "expect": self.expect,
            "outcome": self.outcome.value,
            "onset": self.onset,
            "rollback_at": self.rollback_at,
            "restored_at": self.restored_at,
            "promoted_at": self.promoted_at,
            "time_to_detect": self.time_to_detect,
            "time_to_restore": self.time_to_restore,
            "bad_requests": self.bad_requests,
            "canary_requests": self.canary_requests,
            "simulated_seconds": self.simulated_seconds,
        }
        if with_marks:
            out["timeline"] = [m.to_dict() for m in self.marks]
        return out


class Simulation:
    """The world, the pipeline and the weight, moved forward together.

    Sleeping only moves the clock; the world catches up (draws the traffic of
    the time that passed, in ticks that end on every scrape) when something can
    observe it: a query, a weight change, or the end of the run. A controller
    polling every second therefore costs nothing until it looks.
    """

    def __init__(self, scenario: Scenario, seed: int, settings: Settings) -> None:
        self.scenario = scenario
        self.world = World(scenario, seed)
        self.now = EPOCH
        self.drawn = EPOCH
        self.horizon = EPOCH + scenario.duration_seconds
        q = settings.query
        self.target = Target("sim-service", q.canary_version, q.stable_version)
        self.pipeline = MetricsPipeline(
            self.target, scenario.monitoring, q, now=lambda: self.now, start=EPOCH
        )
        self.weight = 0.0
        self.onset: float | None = None
        self.bad_requests = 0
        self.canary_requests = 0
        #: Off once the strategy is done: nobody looks at the metrics any more.
        self.observed = True
        #: The canary's ticks with what they were drawn from, kept only for the oracle.
        self.truth_log: list[TruthRecord] | None = None

    def advance_to(self, until: float) -> None:
        """Move the clock to ``until``; past the horizon, stop there and end the run."""
        if until > self.horizon:
            self.now = self.horizon
            self.catch_up()
            raise HorizonReached
        self.now = max(self.now, until)

    def catch_up(self) -> None:
        """Draw the traffic from where the world stopped until now, at the current weight."""
        pipeline = self.pipeline
        tick = TICK_SECONDS if self.observed else UNOBSERVED_TICK_SECONDS
        while self.drawn < self.now - 1e-9:
            end = min(self.drawn + tick, self.now)
            if pipeline.next_scrape > self.drawn:
                end = min(end, pipeline.next_scrape)
            t = self.drawn - EPOCH
            stable, canary = self.world.tick(t, end - self.drawn, self.weight)
            if self.observed:
                pipeline.record(stable, canary)
            self.canary_requests += canary.requests
            truth = self.world.last_truth
            if self.truth_log is not None and truth is not None and canary.requests:
                self.truth_log.append(TruthRecord(end, self.weight, truth))
            if self.weight > 0 and self.world.canary_is_bad(t, self.weight):
                if self.onset is None:
                    self.onset = t
                self.bad_requests += canary.bad
            self.drawn = end
            if self.observed:
                pipeline.advance(end)
        if self.observed:
            pipeline.advance(self.now)

    def set_weight(self, weight: float) -> None:
        self.catch_up()
        self.weight = weight


class SimTruth:
    """The oracle's view: the canary's ticks with their true parameters, each visible
    once the scrape that holds it is published (the same delay every strategy has)."""

    def __init__(self, sim: Simulation) -> None:
        self._sim = sim
        self._read = 0
        sim.truth_log = []
        self.scenario = sim.scenario
        self.world = sim.world

    def visible(self) -> list[TruthRecord]:
        """The ticks published since the last call, oldest first."""
        sim = self._sim
        sim.catch_up()
        log = sim.truth_log or []
        until = sim.pipeline.published_at
        end = self._read
        while end < len(log) and log[end].end <= until:
            end += 1
        fresh, self._read = log[self._read : end], end
        return fresh


class SimClock:
    """The strategy's clock: sleeping moves the simulated world forward."""

    def __init__(self, sim: Simulation) -> None:
        self._sim = sim

    def now(self) -> float:
        return self._sim.now

    async def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._sim.advance_to(self._sim.now + seconds)


class SimMetrics:
    """The pipeline's provider, after letting the world catch up with the clock."""

    def __init__(self, sim: Simulation) -> None:
        self._sim = sim
        self._provider = sim.pipeline.provider

    async def snapshot(self, target: Target, *, window_seconds: float | None = None) -> Snapshot:
        self._sim.catch_up()
        return await self._provider.snapshot(target, window_seconds=window_seconds)

    async def history(
        self,
        target: Target,
        *,
        weight: float | None,
        slicing: Slicing,
        since: float | None = None,
        at: float | None = None,
    ) -> StepHistory:
        self._sim.catch_up()
        return await self._provider.history(target, weight=weight, slicing=slicing, since=since, at=at)

    async def is_online(self) -> bool:
        return True


class SimRouter:
    """A router whose changes take ``delay`` seconds to reach the traffic."""

    def __init__(self, sim: Simulation, clock: SimClock, timeline: Timeline, delay: float) -> None:
        self._sim = sim
        self._clock = clock
        self._timeline = timeline
        self._delay = delay

    async def set_weight(self, weight: float) -> None:
        if not 0 <= weight <= 100 or math.isnan(weight):
            raise RouterError(f"weight {weight} outside 0..100")
        await self._clock.sleep(self._delay)
        self._sim.set_weight(float(weight))
        self._timeline.add(self._sim.now, MarkKind.WEIGHT, self._sim.weight, f"router: canary at {weight:g}%")

    async def get_weight(self) -> float:
        return self._sim.weight

    async def reset(self) -> None:
        await self.set_weight(0.0)


def simulate(scenario: Scenario, strategy: str, seed: int, *, settings: Settings | None = None) -> RunResult:
    """Run ``strategy`` on ``scenario`` with ``seed``; deterministic for a given triple."""
    settings = settings or default_settings(scenario)
    return asyncio.run(_run(scenario, strategy, seed, settings))


def default_settings(scenario: Scenario) -> Settings:
    """canarypilot's default policy; the scenario's scrape interval, lag and rate window.

    One setting differs, without changing any decision: nobody sends operator
    commands to a simulated rollout, so the controller need not wake up every
    second to look for them (it still wakes exactly when an analysis is due).
    """
    mon = scenario.monitoring
    # The scenario's monitoring is the deployment's: its scrape interval and lag size the
    # slices (at least two intervals, ending a lag back), as an operator's settings would.
    overrides: dict[str, Any] = {
        "rollout": {"control_poll_seconds": 3600.0, "scrape_lag_seconds": mon.scrape_lag_seconds},
        "scrape": {"interval_seconds": mon.scrape_interval_seconds},
        "query": {"scrape_interval_seconds": mon.scrape_interval_seconds},
    }
    window = mon.rate_window_seconds
    if window is not None:
        overrides["query"]["window"] = f"{int(window)}s"
    return Settings().merged(overrides)


async def _run(scenario: Scenario, strategy_name: str, seed: int, settings: Settings) -> RunResult:
    strategy = make_strategy(strategy_name)
    sim = Simulation(scenario, seed, settings)
    clock = SimClock(sim)
    timeline = Timeline(EPOCH)
    router = SimRouter(sim, clock, timeline, scenario.routing_delay_seconds)
    ctx = Context(scenario, sim.target, clock, SimMetrics(sim), router, timeline, settings)
    if getattr(strategy, "needs_truth", False):
        ctx.truth = SimTruth(sim)
    try:
        await strategy.run(ctx)
        sim.catch_up()
        sim.observed = False
        if timeline.outcome is Outcome.UNDECIDED or (
            scenario.is_bad and timeline.outcome is Outcome.PROMOTED
        ):
            # A promoted bad version, or a release left paused (Argo waiting for a person),
            # keeps serving at its weight to the end: count its bad requests, unobserved.
            sim.advance_to(sim.horizon)
            sim.catch_up()
    except HorizonReached:
        pass
    return RunResult(
        scenario=scenario.name,
        family=scenario.family,
        strategy=strategy_name,
        seed=seed,
        expect=scenario.expect,
        outcome=timeline.outcome,
        onset=sim.onset,
        rollback_at=timeline.rollback_at,
        restored_at=timeline.restored_at,
        promoted_at=timeline.promoted_at,
        bad_requests=sim.bad_requests,
        canary_requests=sim.canary_requests,
        simulated_seconds=sim.now - EPOCH,
        marks=tuple(timeline.marks),
    )
