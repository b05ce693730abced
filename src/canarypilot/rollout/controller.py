"""The rollout controller: one state machine that drives the traffic itself.

Read it top to bottom. ``run`` starts (or resumes) a rollout and ticks until the
phase is final. Each tick, in this order:

1. take operator commands (pause, resume, abort, promote);
2. roll back if the rollout outlived ``max_duration_seconds``;
3. wait until the next analysis is due: analyses run every
   ``analysis_interval_seconds`` (one scrape interval) for as long as a step
   lasts, not only when its pause ends, so a canary that degrades mid-pause is
   caught within the breaker's rules;
4. the window guard: never judge on a window that reaches back before the last
   weight change plus the scrape lag (``w = min(window, now - change - lag)``),
   nor, while a violation is pending, before that violation was judged (the
   next one must be separate evidence); shorter than ``min_window_seconds``: wait;
5. analyse (metrics → judge → evidence), then the circuit breaker;
6. act in the same tick: roll back, hold, stay, or move to the next weight (the
   safe weight, limited to ``max_growth_factor`` times the current one). A
   passing analysis advances once the step's pause has elapsed, or earlier when
   the evidence is conclusive (``early_advance``); after the last scheduled step
   passes, promote to 100 %.

Every router change is first written to the store as *pending*, then sent, then
committed; a restart completes a pending change instead of deciding it again.
All time and waiting go through the injected clock.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from canarypilot._exceptions import (
    CanaryPilotError,
    MetricsUnavailable,
    QueryError,
    RouterError,
    RouterUnavailable,
)
from canarypilot.analysis import BreakerState, assess_outage
from canarypilot.api import verdict as step_verdict
from canarypilot.clock import Clock, SystemClock
from canarypilot.metrics.base import MetricsProvider
from canarypilot.metrics.history import Slicing
from canarypilot.model import Action
from canarypilot.retry import Backoff, retrying
from canarypilot.rollout.events import (
    Command,
    EventKind,
    Phase,
    RolloutEvent,
    RolloutOutcome,
    RolloutSpec,
)
from canarypilot.rollout.notify import Notification, Notifier
from canarypilot.rollout.pacing import WEIGHT_TOLERANCE, bake_ends, next_rung, pause_ends
from canarypilot.rollout.store import (
    AnalysisSummary,
    PendingChange,
    RolloutState,
    RolloutStore,
    StateStore,
)
from canarypilot.routing.base import Router

log = logging.getLogger("canarypilot.rollout")


class RolloutController:
    """Drives one rollout to promoted, rolled_back, aborted or failed.

    >>> # outcome = await RolloutController(spec, metrics=provider, router=router).run()
    >>> # outcome.phase -> Phase.PROMOTED
    """

    def __init__(
        self,
        spec: RolloutSpec,
        *,
        metrics: MetricsProvider,
        router: Router,
        clock: Clock | None = None,
        store: RolloutStore | None = None,
        notifier: Notifier | None = None,
        on_event: Callable[[RolloutEvent], None] | None = None,
        slicing: Slicing | None = None,
    ) -> None:
        self.spec = spec
        self.metrics = metrics
        self.router = router
        self.clock: Clock = clock or SystemClock()
        self._owns_store = store is None
        self.store: RolloutStore = store or StateStore()
        self.notifier = notifier
        self.on_event = on_event
        self.policy = spec.settings.rollout
        self.slicing = slicing or Slicing.from_settings(spec.settings)
        self.state: RolloutState | None = None
        self._notifications: set[asyncio.Task[None]] = set()
        self._announced_wait: float | None = None

    def request(self, command: Command) -> None:
        """Queue an operator command (what ``canarypilot rollout pause`` etc. do)."""
        self.store.put_command(command, at=self.clock.now())

    async def run(self) -> RolloutOutcome:
        """Start or resume the rollout and drive it until its phase is final."""
        self.store.lock()
        try:
            state = await self._start_or_resume()
            while not state.phase.final:
                state = await self._tick(state)
            return self._outcome(state)
        finally:
            if self._notifications:
                await asyncio.gather(*self._notifications, return_exceptions=True)
            if self._owns_store:
                self.store.close()

    # -- start and resume ------------------------------------------------------------------

    async def _start_or_resume(self) -> RolloutState:
        stored = self.store.load(self.spec.name)
        now = self.clock.now()
        if stored is None:
            first = self.spec.settings.interpolation.min_weight
            actual = await self._read_router()
            self.state = RolloutState(
                name=self.spec.name,
                phase=Phase.PROGRESSING,
                step=0,
                steps=len(self.policy.pauses_seconds),
                weight=actual,
                started_at=now,
                step_started_at=now,
                next_analysis_at=now,
                pending=PendingChange(
                    first, 0, Phase.PROGRESSING, ("start at the minimum weight",), restart=True
                ),
            )
            # The log is written ahead of the state: a crash between the two leaves a STARTED
            # event and no state, and the restart must not log a second start.
            if not any(e.kind is EventKind.STARTED for e in self.store.events()):
                self._emit(
                    EventKind.STARTED,
                    service=self.spec.target.service,
                    canary=self.spec.target.canary_version,
                    stable=self.spec.target.stable_version,
                    pauses_seconds=list(self.policy.pauses_seconds),
                    router_weight=actual,
                )
            self.store.save(self.state)
            return await self._apply_pending(self.state)

        self.state = stored
        self._emit(EventKind.RESUMED, pending=None if stored.pending is None else stored.pending.to_dict())
        if stored.phase.final and stored.pending is None:
            return stored
        actual = await self._read_router()
        if stored.pending is not None:
            self._emit(
                EventKind.RECONCILED,
                router_weight=actual,
                action=f"completing the pending change to {stored.pending.weight:g}%",
            )
            return await self._apply_pending(stored)
        if abs(actual - stored.weight) > WEIGHT_TOLERANCE:
            self._emit(
                EventKind.RECONCILED,
                router_weight=actual,
                action=f"router drifted from the stored {stored.weight:g}%: setting it back",
            )
            reasons = [f"router found at {actual:g}%, stored state says {stored.weight:g}%"]
            return await self._apply_pending(
                self._save(
                    stored.but(
                        pending=PendingChange(stored.weight, stored.step, stored.phase, tuple(reasons))
                    )
                )
            )
        self._emit(EventKind.RECONCILED, router_weight=actual, action="router matches the stored weight")
        return stored

    # -- one tick of the state machine -----------------------------------------------------

    async def _tick(self, state: RolloutState) -> RolloutState:
        for command in self.store.take_commands():
            state = await self._obey(command, state)
            if state.phase.final:
                return state

        now = self.clock.now()
        limit = self.policy.max_duration_seconds
        if limit is not None and now - state.started_at > limit:
            return await self._roll_back(state, [f"rollout did not finish within {limit:g}s"])

        if now < state.next_analysis_at:
            why = "paused by operator" if state.phase is Phase.PAUSED else "step pause"
            await self._wait_until(state.next_analysis_at, why)
            return state
        return await self._analyse(state, now)

    async def _analyse(self, state: RolloutState, now: float) -> RolloutState:
        since = state.last_weight_change if state.last_weight_change is not None else state.started_at
        try:
            history = await self.metrics.history(
                self.spec.target, weight=max(state.weight, 0.1), slicing=self.slicing, since=since, at=now
            )
        except QueryError as exc:
            # Rejected, not unavailable: asking again gets the same answer, so the canary can
            # never be judged. Fail toward stable now instead of waiting out an "outage".
            self._emit(EventKind.ANALYSIS, error=str(exc), window_seconds=0.0)
            return await self._roll_back(state, [f"the metrics backend rejects the query: {exc}"])
        except MetricsUnavailable as exc:
            outage = BreakerState(outage_since=state.outage_since)
            action, reasons, breaker = assess_outage(
                outage, now=now, error=str(exc), policy=self.spec.settings.breaker
            )
            self._emit(EventKind.ANALYSIS, error=str(exc), window_seconds=0.0)
            self._emit(EventKind.VERDICT, action=action.value, reasons=list(reasons))
            if action is Action.ROLLBACK:
                return await self._roll_back(state.but(outage_since=breaker.outage_since), list(reasons))
            return self._hold(state.but(outage_since=breaker.outage_since), reasons, now)

        state = state.but(outage_since=None)
        if self.slicing.measure_interval and history.scrape_interval != self.slicing.scrape_interval:
            # The provider measured the scrape interval: schedule by the slices it cut.
            self.slicing = replace(self.slicing, scrape_interval=history.scrape_interval)
        if not history.slices:
            # The first slice after the change ends on the grid, and is published a lag later.
            ends = self.slicing.ends(since, since + 2 * self.slicing.length + self.slicing.lag_seconds)
            due = max(now + 1.0, ends[0] + self.slicing.lag_seconds) if ends else now + self.slicing.length
            self._emit(
                EventKind.WAITING, until=due, reason="no complete time slice since the weight change yet"
            )
            return self._save(state.but(next_analysis_at=due))

        verdict = step_verdict(history, self.spec.settings)
        decision = verdict.decision
        window = history.slices[-1].end - history.slices[0].start
        self._emit(
            EventKind.ANALYSIS, window_seconds=window, slices=len(history.slices), **decision.to_dict()
        )
        self._emit(
            EventKind.VERDICT,
            action=verdict.action.value,
            weight=verdict.weight,
            reasons=list(verdict.reasons),
            consecutive_violations=verdict.consecutive_violations,
        )
        state = state.but(
            last_analysis=AnalysisSummary.of(decision), consecutive=verdict.consecutive_violations
        )
        if verdict.action is Action.ROLLBACK:
            return await self._roll_back(state, list(verdict.reasons))
        if verdict.action is Action.HOLD:
            return self._hold(state, verdict.reasons, now)
        if state.phase is Phase.PAUSED:
            return self._hold(state, ("paused by operator: weight kept",), now)

        assert verdict.weight is not None
        evidence = decision.evidence
        within = evidence is not None and evidence.within_slo
        rung = next_rung(state.weight, verdict.weight, self.spec.settings, within_slo=within)
        # The pause is the longest stay: a canary the evidence shows within the SLO (upper
        # bounds inside both thresholds, after min_slices slices) has been judged at this
        # weight and moves on (``early_advance``); the bake time before 100 % still holds.
        early = self.policy.early_advance and within and now < pause_ends(state, self.policy)
        step_over = max(
            now if early else pause_ends(state, self.policy),
            bake_ends(state, self.policy) if rung.promote else now,
        )
        if now < step_over:
            # Passing, but the step's pause (or the bake time before 100 %) is not over: keep
            # the weight and keep watching.
            due = min(self._next_look(now), step_over)
            self._announced_wait = due
            in_pause = now < pause_ends(state, self.policy)
            waiting = "step pause: analysing while it runs" if in_pause else "bake time before 100%"
            self._emit(EventKind.WAITING, until=due, reason=waiting)
            return self._save(state.but(reasons=verdict.reasons, next_analysis_at=due))
        if not rung.promote and abs(rung.weight - state.weight) <= WEIGHT_TOLERANCE:
            if rung.cap >= 100.0:
                why = "not yet shown within the SLO: holding before the last increase to 100%"
            else:
                why = f"safe weight {verdict.weight:g}% covers no more than the current {state.weight:g}%"
            return self._hold(state, (*verdict.reasons, why), now)
        ended = "shown within the SLO before the pause ended" if early else "step pause elapsed"
        if rung.promote:
            done = f"{ended}; validated at {state.weight:g}%: promoting to 100%"
            promoted = (*verdict.reasons, f"{done} (growth cap {rung.cap:g}%)")
            self._emit(
                EventKind.DECISION,
                weight=100.0,
                safe_weight=verdict.weight,
                cap=rung.cap,
                next_step=state.step + 1,
                early=early,
            )
            return await self._apply_pending(
                self._save(state.but(pending=PendingChange(100.0, state.step + 1, Phase.PROMOTED, promoted)))
            )
        chosen = f"next weight {rung.weight:g}% (safe {verdict.weight:g}%, growth cap {rung.cap:g}%)"
        advance = (*verdict.reasons, f"{ended}; {chosen}")
        self._emit(
            EventKind.DECISION,
            safe_weight=verdict.weight,
            cap=rung.cap,
            weight=rung.weight,
            next_step=state.step + 1,
            early=early,
        )
        pending = PendingChange(rung.weight, state.step + 1, Phase.PROGRESSING, advance, restart=True)
        return await self._apply_pending(self._save(state.but(pending=pending)))

    def _hold(self, state: RolloutState, reasons: tuple[str, ...], now: float) -> RolloutState:
        due = self._next_look(now)
        self._announced_wait = due
        why = "paused by operator" if state.phase is Phase.PAUSED else "holding: analyse again"
        self._emit(EventKind.WAITING, until=due, reason=why)
        return self._save(state.but(reasons=tuple(reasons), next_analysis_at=due))

    def _next_look(self, now: float) -> float:
        """The next analysis: when the next slice is published (nothing new comes before)."""
        length, lag = self.slicing.length, self.slicing.lag_seconds
        published = (math.floor((now - lag) / length + 1e-9) + 1) * length + lag
        return max(now + 1e-3, published)

    # -- operator commands -----------------------------------------------------------------

    async def _obey(self, command: Command, state: RolloutState) -> RolloutState:
        self._emit(EventKind.COMMAND, command=command.value)
        if command is Command.ABORT:
            return await self._roll_back(state, ["aborted by operator"], phase=Phase.ABORTED)
        if command is Command.PROMOTE:
            pending = PendingChange(100.0, state.step, Phase.PROMOTED, ("promoted by operator",))
            return await self._apply_pending(self._save(state.but(pending=pending)))
        if command is Command.PAUSE and state.phase is Phase.PROGRESSING:
            return self._enter(state, Phase.PAUSED, ["paused by operator"])
        if command is Command.RESUME and state.phase is Phase.PAUSED:
            return self._enter(state, Phase.PROGRESSING, ["resumed by operator"])
        return state

    def _enter(self, state: RolloutState, phase: Phase, reasons: list[str]) -> RolloutState:
        state = self._commit(
            state.but(phase=phase, reasons=tuple(reasons)), (EventKind.PHASE, {"reasons": reasons})
        )
        self._notify(state)
        return state

    # -- router changes: pending, sent, confirmed, committed -------------------------------

    async def _roll_back(
        self, state: RolloutState, reasons: list[str], *, phase: Phase = Phase.ROLLED_BACK
    ) -> RolloutState:
        return await self._apply_pending(
            self._save(state.but(pending=PendingChange(0.0, state.step, phase, tuple(reasons))))
        )

    async def _apply_pending(self, state: RolloutState) -> RolloutState:
        pending = state.pending
        assert pending is not None
        target, phase, reasons = pending.weight, pending.phase, pending.reasons
        try:
            confirmed = await self._route(target)
        except (RouterUnavailable, RouterError) as exc:
            if target == 0.0:
                # Never report a rollback that the router did not confirm; keep it pending
                # so that `rollout --resume` tries again.
                failed = (*reasons, f"rollback could not be confirmed: {exc}")
                state = self._commit(
                    state.but(phase=Phase.FAILED, reasons=failed, finished_at=self.clock.now()),
                    (EventKind.PHASE, {"reasons": list(failed)}),
                )
                log.error("rollout %s: ROLLBACK NOT CONFIRMED: %s", state.name, exc)
                self._notify(state)
                return state
            return await self._roll_back(state.but(pending=None), [f"router failed at {target:g}%: {exc}"])

        now = self.clock.now()
        step = pending.step
        if getattr(self.router, "weights_are_steps", False):
            target = confirmed
        changes: dict[str, Any] = {"weight": target, "step": step, "phase": phase, "pending": None}
        changes["reasons"] = reasons
        if pending.restart or abs(target - state.weight) > WEIGHT_TOLERANCE:
            changes["last_weight_change"] = now
        if pending.restart and not phase.final:
            # Analyses start as soon as the window guard allows and run while the pause lasts.
            changes.update(step_started_at=now, next_analysis_at=now)
        if phase.final:
            changes["finished_at"] = now
        routed = {"requested": pending.weight, "confirmed": confirmed, "reasons": list(reasons)}
        events: list[tuple[EventKind, dict[str, Any]]] = [(EventKind.ROUTER, routed)]
        if phase is not state.phase:
            events.append((EventKind.PHASE, {"reasons": list(reasons)}))
        state = self._commit(state.but(**changes), *events)
        self._notify(state)
        return state

    async def _route(self, weight: float) -> float:
        """Set the weight (and read it back, except for a rollback); retry a router that did
        not answer, never one that refused; raise after the last retry."""

        async def change() -> float:
            if weight == 0.0:
                # reset() returns only once the router confirms 0 % (the Router contract);
                # no extra read-back on the path where every millisecond is canary traffic.
                await self.router.reset()
                return 0.0
            await self.router.set_weight(weight)
            confirmed = await self.router.get_weight()
            # Argo Rollouts picks its own step weights: any answer confirms a forward move.
            follows_steps = getattr(self.router, "weights_are_steps", False) and weight > 0
            if not follows_steps and abs(confirmed - weight) > WEIGHT_TOLERANCE:
                # The change may still be landing (a reload): the weight is unknown, not refused.
                raise RouterUnavailable(f"router reports {confirmed:g}% after being set to {weight:g}%")
            return confirmed

        def failed(exc: CanaryPilotError, attempt: int, gave_up: bool) -> None:
            self._emit(
                EventKind.ROUTER_FAILED, requested=weight, attempt=attempt, error=str(exc), gave_up=gave_up
            )
            log.warning("rollout %s: router change to %g%% failed: %s", self.spec.name, weight, exc)

        return await retrying(change, on_failure=failed, **self._router_retries())

    async def _read_router(self) -> float:
        return await retrying(self.router.get_weight, **self._router_retries())

    def _router_retries(self) -> dict[str, Any]:
        backoff = Backoff(self.policy.router_backoff_seconds)
        return {"clock": self.clock, "retries": self.policy.router_retries, "backoff": backoff}

    # -- waiting, events, notifications ----------------------------------------------------

    async def _wait_until(self, due: float, why: str) -> None:
        if self._announced_wait != due:
            self._announced_wait = due
            self._emit(EventKind.WAITING, until=due, reason=why)
        remaining = due - self.clock.now()
        await self.clock.sleep(min(remaining, self.policy.control_poll_seconds))

    def _commit(self, state: RolloutState, *events: tuple[EventKind, dict[str, Any]]) -> RolloutState:
        """Log the events of a transition, then save the state it leads to.

        The audit log is written ahead of the checkpoint: a crash in between leaves the
        events logged and the change still pending, so the restart redoes the change
        (logging it once more) rather than losing its record.
        """
        self.state = state
        for kind, data in events:
            self._emit(kind, **data)
        return self._save(state)

    def _save(self, state: RolloutState) -> RolloutState:
        self.store.save(state)
        self.state = state
        return state

    def _emit(self, kind: EventKind, **data: Any) -> None:
        state = self.state
        assert state is not None
        event = RolloutEvent(
            seq=self.store.next_seq(),
            at=self.clock.now(),
            rollout=self.spec.name,
            kind=kind,
            phase=state.phase,
            step=state.step,
            weight=state.weight,
            data=data,
        )
        self.store.append(event)
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:  # a display bug must never stop a rollback
                log.exception("on_event callback failed")

    def _notify(self, state: RolloutState) -> None:
        if self.notifier is None:
            return
        note = Notification(state.name, state.phase.value, state.weight, state.reasons, self.clock.now())
        task = asyncio.get_running_loop().create_task(self._deliver(self.notifier, note))
        self._notifications.add(task)
        task.add_done_callback(self._notifications.discard)

    async def _deliver(self, notifier: Notifier, note: Notification) -> None:
        try:
            await notifier.notify(note)
        except Exception as exc:  # any webhook failure is reported, never raised
            self._emit(EventKind.NOTIFICATION_FAILED, error=str(exc), phase_notified=note.phase)

    def _outcome(self, state: RolloutState) -> RolloutOutcome:
        return RolloutOutcome(
            name=state.name,
            phase=state.phase,
            weight=state.weight,
            step=state.step,
            steps=state.steps,
            reasons=state.reasons,
            started_at=state.started_at,
            finished_at=state.finished_at,
        )
