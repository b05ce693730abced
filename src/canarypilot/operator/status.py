"""A release's state in its CanaryRelease's ``status``: the operator's ``RolloutStore``.

The rollout controller saves its checkpoint synchronously; this store keeps the latest
in memory and ``flush`` writes it to the ``status`` subresource with the
``resourceVersion`` it last read or wrote. The operator flushes before every router
call and before every wait (``FencedRouter``, ``FlushingClock``), so a change the
controller marked *pending* is in the API server before the router is touched: a
SIGKILL at any point leaves a checkpoint the next leader completes, never repeats.

A conflict means somebody else wrote the object. A spec edit (the user's) is retried on
the new version; a status that is no longer the one this replica wrote means another
leader took over, and the store stops with ``LeadershipLost``.

The same flush posts Kubernetes Events for weight changes, verdicts and phase changes,
and keeps a bounded ``history`` of them in the status, so ``kubectl describe`` tells why
the release is where it is.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from canarypilot._exceptions import RouterError, RouterUnavailable
from canarypilot.operator.crd import HISTORY_LIMIT
from canarypilot.operator.lease import micro_time
from canarypilot.operator.resource import Release
from canarypilot.render.operator import API_VERSION, KIND, PLURAL
from canarypilot.rollout import Command, EventKind, Phase, RolloutEvent, RolloutState
from canarypilot.routing.kubernetes import Conflict, KubeClient, NotFound

log = logging.getLogger("canarypilot.operator")
#: An operator command for the running release (pause, resume, abort, promote), removed once done.
COMMAND_ANNOTATION = "canarypilot.io/command"

#: The condition each controller phase sets True (the others are False).
CONDITIONS = ("Progressing", "Paused", "Promoted", "RolledBack", "Invalid")
_CONDITION_OF = {
    Phase.PROGRESSING: "Progressing",
    Phase.PAUSED: "Paused",
    Phase.PROMOTED: "Promoted",
    Phase.ROLLED_BACK: "RolledBack",
    Phase.ABORTED: "RolledBack",
    Phase.FAILED: "RolledBack",
}
_PHASE_NAME = {
    Phase.PROGRESSING: "Progressing",
    Phase.PAUSED: "Paused",
    Phase.PROMOTED: "Promoted",
    Phase.ROLLED_BACK: "RolledBack",
    Phase.ABORTED: "Aborted",
    Phase.FAILED: "Failed",
}


def stamp(at: float) -> str:
    """A Kubernetes ``Time`` (RFC 3339, whole seconds)."""
    return micro_time(at).split(".")[0] + "Z"


def release_path(namespace: str, name: str, *, status: bool = False) -> str:
    base = f"/apis/{API_VERSION}/namespaces/{namespace}/{PLURAL}/{name}"
    return f"{base}/status" if status else base


def conditions(
    true: str | None, *, reason: str, message: str, generation: int, at: float
) -> list[dict[str, Any]]:
    """Every condition, ``true`` set True and the rest False (one reason and message)."""
    return [
        {
            "type": kind,
            "status": "True" if kind == true else "False",
            "reason": reason,
            "message": message[:1000],
            "lastTransitionTime": stamp(at),
            "observedGeneration": generation,
        }
        for kind in CONDITIONS
    ]


class StatusStore:
    """``RolloutStore`` over one CanaryRelease's status; ``fence`` guards every write."""

    def __init__(
        self,
        client: KubeClient,
        release: Release,
        obj: dict[str, Any],
        *,
        fence: Callable[[], None],
        now: Callable[[], float],
        fresh: bool,
    ) -> None:
        self.client = client
        self.release = release
        self.fence = fence
        self.now = now
        meta = obj.get("metadata") or {}
        self.uid = str(meta.get("uid", ""))
        self.generation = int(meta.get("generation") or 0)
        self.resource_version = str(meta.get("resourceVersion", ""))
        self.status: dict[str, Any] = dict(obj.get("status") or {})
        checkpoint = None if fresh else self.status.get("checkpoint")
        self._state = RolloutState.from_json(json.dumps(checkpoint)) if checkpoint else None
        self._written = self.status.get("checkpoint")
        self._events: list[RolloutEvent] = []
        self._unflushed: list[RolloutEvent] = []
        self._commands: list[Command] = []
        #: Command annotations handed to the controller (``_requested``), then taken by it
        #: (``_acting``); removed from the resource after the next status write.
        self._requested: list[str] = []
        self._acting: list[str] = []
        self._seq = max((int(h.get("seq", 0)) for h in self.status.get("history") or []), default=0)
        self._dirty = fresh
        self._verdict: RolloutEvent | None = None
        self._verdict_action: object = (self.status.get("lastDecision") or {}).get("action")

    # -- RolloutStore ----------------------------------------------------------------------

    def lock(self) -> None:
        """The Lease is the lock: only the leader runs releases."""

    def close(self) -> None:
        pass

    def load(self, name: str | None = None) -> RolloutState | None:
        return self._state

    def save(self, state: RolloutState) -> None:
        self._state = state
        self._dirty = True

    def put_command(self, command: Command, *, at: float, annotation: str | None = None) -> None:
        """A command for the controller; ``annotation`` is the resource's command annotation
        it came from, removed only once the controller has acted and the status says so."""
        self._commands.append(command)
        if annotation is not None:
            self._requested.append(annotation)

    def take_commands(self) -> list[Command]:
        taken, self._commands = self._commands, []
        self._acting.extend(self._requested)
        self._requested = []
        return taken

    def holds(self, annotation: str) -> bool:
        """This command annotation was handed over and is not acknowledged yet."""
        return annotation in self._requested or annotation in self._acting

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def append(self, event: RolloutEvent) -> None:
        self._events.append(event)
        if event.kind is EventKind.VERDICT:
            # Every verdict updates lastDecision; only a change of verdict is an Event.
            self._verdict, changed = event, event.data.get("action") != self._verdict_action
            self._verdict_action = event.data.get("action")
            self._dirty = True
            if not changed:
                return
        if event.kind in (EventKind.ROUTER, EventKind.VERDICT, EventKind.PHASE, EventKind.ROUTER_FAILED):
            self._unflushed.append(event)
            self._dirty = True

    def events(self) -> list[RolloutEvent]:
        return list(self._events)

    # -- writing the status ----------------------------------------------------------------

    @property
    def state(self) -> RolloutState | None:
        return self._state

    async def flush(self, **extra: Any) -> None:
        """Write the status (and post the Events) if anything changed since the last flush;
        then remove the command annotations whose effect the status now shows."""
        if self._dirty or extra:
            events, self._unflushed = self._unflushed, []
            self.status = self._render(events, extra)
            await self._write_status()
            self._dirty = False
            for event in events:
                await self._post_event(event)
        if self._acting:
            # What the commands did is in the status now: a crash before this line has the
            # next leader take them again (each is idempotent on the state it left).
            done, self._acting = self._acting, []
            for annotation in done:
                self.fence()
                await remove_command(self.client, self.release.namespace, self.release.name, annotation)

    def _render(self, events: list[RolloutEvent], extra: dict[str, Any]) -> dict[str, Any]:
        status = {**self.status, **extra, "observedGeneration": self.generation}
        history = list(status.get("history") or [])
        for event in events:
            history.append(
                {
                    "at": micro_time(event.at),  # to the microsecond: how long a change took
                    "kind": event.kind.value,
                    "weight": event.weight,
                    "message": describe(event)[:500],
                    "seq": event.seq,
                }
            )
        if self._verdict is not None:
            verdict, self._verdict = self._verdict, None
            last = self._state.last_analysis if self._state is not None else None
            status["lastVerdict"] = str(verdict.data.get("action", ""))
            status["lastDecision"] = {
                "action": status["lastVerdict"],
                "safeWeight": verdict.data.get("weight"),
                "latencyDelta": None if last is None else last.latency_delta,
                "errorDelta": None if last is None else last.error_delta,
                "reasons": [str(r)[:300] for r in verdict.data.get("reasons") or []][:10],
                "at": stamp(verdict.at),
            }
        status["history"] = history[-HISTORY_LIMIT:]
        state = self._state
        if state is not None:
            checkpoint = json.loads(state.to_json())
            status["checkpoint"] = checkpoint
            status.update(weight=state.weight, step=state.step, steps=state.steps)
            if "phase" not in extra:
                status["phase"] = _PHASE_NAME[state.phase]
            message = "; ".join(state.reasons) or status.get("message", "")
            status["message"] = message[:1000]
            true = _CONDITION_OF[state.phase] if "phase" not in extra else extra.get("condition")
            status["conditions"] = conditions(
                true, reason=status["phase"], message=message, generation=self.generation, at=self.now()
            )
        status.update({k: v for k, v in extra.items() if k != "condition"})
        status.pop("condition", None)
        return status

    async def _write_status(self) -> None:
        path = release_path(self.release.namespace, self.release.name, status=True)
        for _ in range(5):
            self.fence()
            body = {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "metadata": {
                    "name": self.release.name,
                    "namespace": self.release.namespace,
                    "resourceVersion": self.resource_version,
                },
                "status": self.status,
            }
            try:
                written = await self.client.replace(path, body)
            except Conflict:
                current = await self.client.get(release_path(self.release.namespace, self.release.name))
                if (current.get("status") or {}).get("checkpoint") != self._written:
                    from canarypilot.operator.lease import LeadershipLost

                    raise LeadershipLost(
                        f"CanaryRelease {self.release.namespace}/{self.release.name}: its status was "
                        "written by another operator"
                    ) from None
                self.resource_version = str(current["metadata"]["resourceVersion"])
                continue
            self.resource_version = str(written["metadata"]["resourceVersion"])
            self._written = self.status.get("checkpoint")
            return
        raise RouterUnavailable(f"CanaryRelease {self.release.name}: status write kept conflicting")

    async def _post_event(self, event: RolloutEvent) -> None:
        reason = {
            EventKind.ROUTER: "WeightChanged",
            EventKind.VERDICT: "Verdict",
            EventKind.PHASE: "Phase",
            EventKind.ROUTER_FAILED: "RouterFailed",
        }[event.kind]
        warning = event.kind is EventKind.ROUTER_FAILED or (
            event.kind is EventKind.VERDICT and event.data.get("action") == "rollback"
        )
        where = (self.release.namespace, self.release.name, self.uid)
        body = event_body(where, reason, describe(event), warning=warning, at=event.at)
        try:
            self.fence()
            await self.client.create(f"/api/v1/namespaces/{self.release.namespace}/events", body)
        except RouterUnavailable as exc:  # Events are best effort; the status holds the truth
            log.warning("release %s: event not posted: %s", self.release.name, exc)


async def remove_command(client: KubeClient, namespace: str, name: str, value: str) -> bool:
    """Remove the command annotation if it still says ``value`` (a JSON patch whose ``test``
    guards a newer command); False if it did not."""
    pointer = "/metadata/annotations/" + COMMAND_ANNOTATION.replace("~", "~0").replace("/", "~1")
    try:
        await client.json_patch(
            release_path(namespace, name),
            [{"op": "test", "path": pointer, "value": value}, {"op": "remove", "path": pointer}],
        )
    except (NotFound, Conflict):
        return False
    except RouterError:  # the test failed (a newer command): the next pass takes that one
        return False
    return True


def event_body(
    release: tuple[str, str, str], reason: str, message: str, *, warning: bool, at: float
) -> dict[str, Any]:
    """A Kubernetes Event about the release ``(namespace, name, uid)``."""
    namespace, name, uid = release
    when = stamp(at)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{name}.", "namespace": namespace},
        "involvedObject": {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": name,
            "namespace": namespace,
            "uid": uid,
        },
        "reason": reason,
        "message": message[:1000],
        "type": "Warning" if warning else "Normal",
        "source": {"component": "canarypilot-operator"},
        "firstTimestamp": when,
        "lastTimestamp": when,
        "count": 1,
    }


def describe(event: RolloutEvent) -> str:
    """One line for an Event and the history: what happened and why."""
    data = event.data
    reasons = "; ".join(str(r) for r in data.get("reasons") or [])
    if event.kind is EventKind.ROUTER:
        return f"canary weight {data.get('confirmed', event.weight):g}%: {reasons}"
    if event.kind is EventKind.VERDICT:
        weight = data.get("weight")
        shown = f" (safe weight {weight:g}%)" if isinstance(weight, int | float) else ""
        return f"{data.get('action')}{shown}: {reasons}"
    if event.kind is EventKind.ROUTER_FAILED:
        attempt, error = data.get("attempt"), data.get("error")
        return f"router change to {data.get('requested')}% failed (attempt {attempt}): {error}"
    return f"phase {event.phase.value}: {reasons}"
