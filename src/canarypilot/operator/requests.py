"""What users ask of a release through its resource: a command (the
``canarypilot.io/command`` annotation, taken once) and a deletion (the finalizer restores
plain traffic first). Mixed into ``Operator``, whose running releases they act on."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from canarypilot._exceptions import RouterError, RouterUnavailable
from canarypilot.clock import Clock
from canarypilot.operator.lease import LeaderElector
from canarypilot.operator.resource import InvalidRelease, parse_release
from canarypilot.operator.status import (
    StatusStore,
    event_body,
    release_path,
    remove_command,
)
from canarypilot.operator.wiring import build_router
from canarypilot.operator.workload import Workload
from canarypilot.rollout import Command
from canarypilot.routing.kubernetes import Conflict, KubeClient, NotFound

log = logging.getLogger("canarypilot.operator")
#: Set on every release the operator runs: deleting one mid-release restores plain traffic first.
FINALIZER = "canarypilot.io/restore-traffic"


class UserRequests:
    """Commands and deletions; the attributes are ``Operator``'s."""

    client: KubeClient
    elector: LeaderElector
    clock: Clock
    _tasks: dict[tuple[str, str], asyncio.Task[None]]
    _stores: dict[tuple[str, str], StatusStore]

    async def take_command(self, obj: dict[str, Any], key: tuple[str, str], requested: str) -> None:
        """``canarypilot.io/command: pause|resume|abort|promote`` on the resource: handed to the
        running release's controller; the annotation stays until the controller has acted and
        the status says so (``StatusStore.flush``), so an operator that dies in between leaves
        it for the next leader. A newer value is a new command. With no release running the
        command is ignored (and removed), with a Warning Event saying so."""
        task, store = self._tasks.get(key), self._stores.get(key)
        try:
            command = Command(requested.strip().lower())
        except ValueError:
            ignored = f"unknown command {requested[:40]!r} (pause, resume, abort or promote): ignored"
        else:
            if store is not None and task is not None and not task.done():
                if not store.holds(requested):
                    store.put_command(command, at=self.clock.now(), annotation=requested)
                    log.info("release %s/%s: %s requested", *key, command.value)
                return
            ignored = f"{command.value}: no release is running: ignored"
        self.elector.ensure()
        if await remove_command(self.client, key[0], key[1], requested):
            log.warning("release %s/%s: %s", *key, ignored)
            await self._event(obj, "CommandIgnored", ignored, warning=True)

    async def _event(self, obj: dict[str, Any], reason: str, message: str, *, warning: bool) -> None:
        meta = obj.get("metadata") or {}
        where = (str(meta.get("namespace")), str(meta.get("name")), str(meta.get("uid", "")))
        body = event_body(where, reason, message, warning=warning, at=self.clock.now())
        with contextlib.suppress(RouterUnavailable, RouterError):
            await self.client.create(f"/api/v1/namespaces/{where[0]}/events", body)

    async def finalize(self, obj: dict[str, Any], key: tuple[str, str]) -> None:
        """The release is being deleted: stop it, put every request back on the primary (canary
        weight 0, canary scaled to 0), then let the API server delete it. The primary stays as
        it is (paused, with whatever template its spec holds): nothing is rolled out on a delete."""
        task = self._tasks.pop(key, None)
        self._stores.pop(key, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        status = obj.get("status") or {}
        unfinished = status.get("checkpoint") is not None and not status.get("finalized", False)
        try:
            release = parse_release(obj)
        except InvalidRelease as exc:
            release = None
            if unfinished:
                log.warning("release %s/%s deleted while invalid: traffic not restored: %s", *key, exc)
        if release is not None and unfinished:
            self.elector.ensure()
            await build_router(self.client, release).reset()
            await Workload(self.client, release, fence=self.elector.ensure).scale_canary_to_zero()
            log.info("release %s/%s deleted mid-release: canary at 0 %%, scaled to 0", *key)
        meta = obj.get("metadata") or {}
        kept = [f for f in meta.get("finalizers") or [] if f != FINALIZER]
        self.elector.ensure()
        with contextlib.suppress(Conflict, NotFound):
            changes = {"finalizers": kept, "resourceVersion": meta.get("resourceVersion")}
            await self.client.patch(release_path(*key), {"metadata": changes})
