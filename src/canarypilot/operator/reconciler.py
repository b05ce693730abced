"""The operator's loop: every CanaryRelease reconciled, each running release driven by the
same ``RolloutController`` as ``canarypilot rollout``.

Read it top to bottom. ``Operator.run`` waits for the Lease, then every
``poll_seconds`` lists the CanaryReleases and reconciles each one:

1. an invalid spec gets the ``Invalid`` condition (written once per generation) and is
   left alone: no retry storm, no crash;
2. a release seen for the first time adopts its Deployment once that is rolled out: paused,
   its template's hash recorded as stable (phase ``Idle``);
3. a checkpoint in the status that is not finished, or a template hash that is neither
   the stable one nor the last rejected one, starts a task that runs the release: the
   canary brought up, the controller run on the status store, then the workload's end
   (promotion or rollback) and the checkpoint marked ``finalized``;
4. a running release whose Deployment got yet another template (checked every
   ``TEMPLATE_CHECK_SECONDS``, and once more before promoting) is superseded: its run
   stopped, the canary route set to 0, and a fresh release started on the newest template
   (none if that is the stable or the rejected one). What was validated is what is promoted.

Writes go through the elector's fence; the store is flushed before every router call
and every wait, so the status is always at least as new as the router.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from contextlib import AsyncExitStack
from typing import Any

from canarypilot._exceptions import CanaryPilotError, RouterUnavailable
from canarypilot.clock import Clock, SystemClock
from canarypilot.operator.batching import SharedPrometheus
from canarypilot.operator.lease import LeaderElector, LeadershipLost
from canarypilot.operator.requests import FINALIZER, UserRequests
from canarypilot.operator.resource import InvalidRelease, Release, parse_release
from canarypilot.operator.status import COMMAND_ANNOTATION, StatusStore, conditions, release_path
from canarypilot.operator.wiring import FencedRouter, FlushingClock, build_router, open_metrics
from canarypilot.operator.workload import Workload, rolled_out, template_hash
from canarypilot.render.operator import API_VERSION, PLURAL
from canarypilot.rollout import Phase, RolloutController
from canarypilot.routing.kubernetes import Conflict, KubeClient

log = logging.getLogger("canarypilot.operator")
#: How often a running release's Deployment is read for a newer template (one GET each).
TEMPLATE_CHECK_SECONDS = 5.0


class Operator(UserRequests):
    """Reconciles every CanaryRelease in ``namespace`` (None: all namespaces)."""

    def __init__(
        self,
        client: KubeClient,
        elector: LeaderElector,
        *,
        namespace: str | None = None,
        poll_seconds: float = 2.0,
        clock: Clock | None = None,
        batch_window_seconds: float = 0.05,
    ) -> None:
        self.client = client
        self.elector = elector
        self.namespace = namespace
        self.poll_seconds = poll_seconds
        self.clock: Clock = clock or SystemClock()
        self._tasks: dict[tuple[str, str], asyncio.Task[None]] = {}
        #: One batching client per Prometheus, shared by the releases that read it.
        self._providers = AsyncExitStack()
        self.shared = SharedPrometheus(self._providers, window_seconds=batch_window_seconds)
        #: The running releases' stores, which take operator commands.
        self._stores: dict[tuple[str, str], StatusStore] = {}
        self._invalid: dict[tuple[str, str], tuple[int, str]] = {}
        #: The template each running release validates, and when its Deployment was last read.
        self._digests: dict[tuple[str, str], str] = {}
        self._checked: dict[tuple[str, str], float] = {}

    async def run(self) -> None:
        """Lead, reconcile until leadership is lost (``LeadershipLost``), then stop every release."""
        await self.elector.acquire()
        log.info("operator %s: leading", self.elector.identity)
        keeper = asyncio.create_task(self.elector.keep())
        try:
            while True:
                if keeper.done():
                    keeper.result()  # raises LeadershipLost
                try:
                    await self.reconcile_all()
                except RouterUnavailable as exc:  # the API server is away: running releases go on
                    log.warning("cannot list CanaryReleases: %s", exc)
                await asyncio.sleep(self.poll_seconds)
        finally:
            keeper.cancel()
            for task in self._tasks.values():
                task.cancel()
            await asyncio.gather(keeper, *self._tasks.values(), return_exceptions=True)
            await self._providers.aclose()

    async def reconcile_all(self) -> None:
        where = f"/namespaces/{self.namespace}" if self.namespace else ""
        listing = await self.client.get(f"/apis/{API_VERSION}{where}/{PLURAL}")
        for obj in listing.get("items") or []:
            meta = obj.get("metadata") or {}
            key = (str(meta.get("namespace")), str(meta.get("name")))
            task = self._tasks.get(key)
            if meta.get("deletionTimestamp"):
                if FINALIZER in (meta.get("finalizers") or []):
                    try:
                        await self.finalize(obj, key)
                    except LeadershipLost:
                        raise
                    except CanaryPilotError as exc:  # retried on the next pass
                        log.warning("release %s/%s: restoring traffic before deletion: %s", *key, exc)
                continue
            requested = (meta.get("annotations") or {}).get(COMMAND_ANNOTATION)
            if isinstance(requested, str):
                try:
                    await self.take_command(obj, key, requested)
                except LeadershipLost:
                    raise
                except CanaryPilotError as exc:  # taken again on the next pass
                    log.warning("release %s/%s: command %r: %s", *key, requested[:40], exc)
            if task is not None and not task.done():
                try:
                    await self.check_template(obj, key, task)
                except LeadershipLost:
                    raise
                except CanaryPilotError as exc:  # checked again on a later pass
                    log.warning("release %s/%s: reading its Deployment: %s", *key, exc)
                continue
            if task is not None:
                self._tasks.pop(key)
                self._stores.pop(key, None)
                self._digests.pop(key, None)
                failure = None if task.cancelled() else task.exception()
                if isinstance(failure, LeadershipLost):
                    raise failure
                if failure is not None:  # the next pass resumes it from the status
                    log.warning("release %s/%s stopped: %s", *key, failure)
                # This pass's listing may predate the task's last status writes (a pass over
                # many releases takes a while): reconciling from it would resume the release
                # from a stale checkpoint. The next pass lists it afresh.
                continue
            try:
                await self.reconcile(obj)
            except LeadershipLost:
                raise
            except CanaryPilotError as exc:  # one release's trouble never stops the others
                log.warning("release %s/%s: %s", *key, exc)

    async def reconcile(self, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        key = (str(meta.get("namespace")), str(meta.get("name")))
        generation = int(meta.get("generation") or 0)
        try:
            release = parse_release(obj)
        except InvalidRelease as exc:
            await self._mark_invalid(obj, key, generation, str(exc))
            return
        self._invalid.pop(key, None)
        if FINALIZER not in (meta.get("finalizers") or []):
            # Before the operator changes anything: deleting the release must restore traffic.
            self.elector.ensure()
            finalizers = [*(meta.get("finalizers") or []), FINALIZER]
            changes = {"finalizers": finalizers, "resourceVersion": meta.get("resourceVersion")}
            with contextlib.suppress(Conflict):  # changed meanwhile: the next pass reads it again
                await self.client.patch(release_path(*key), {"metadata": changes})
            return
        status = obj.get("status") or {}
        workload = Workload(self.client, release, fence=self.elector.ensure)
        primary = await workload.primary()
        digest = template_hash(primary)
        if not status.get("stableTemplateHash"):
            if not rolled_out(primary):
                # Adopt what the Deployment *runs*: paused before its first ReplicaSet is up, it
                # would never start one, and the template recorded as stable would run nowhere.
                return
            await workload.hold_primary()
            idle = "waiting for a new pod template on the Deployment"
            await self._write_status(
                obj, self._phase("Idle", None, idle, generation, stableTemplateHash=digest)
            )
            return
        checkpoint = status.get("checkpoint")
        unfinished = checkpoint is not None and not status.get("finalized", False)
        fresh = not unfinished and digest not in (
            status.get("stableTemplateHash"),
            status.get("rejectedTemplateHash"),
        )
        recorded = status.get("releaseTemplateHash")
        if unfinished and recorded and digest != recorded:
            await self._supersede(release, obj, digest)
        elif unfinished or fresh:
            self._tasks[key] = asyncio.create_task(self._run_release(release, obj, digest, fresh=fresh))

    async def check_template(
        self, obj: dict[str, Any], key: tuple[str, str], task: asyncio.Task[None]
    ) -> None:
        """A running release whose Deployment holds a newer template is stopped and reconciled
        again at once, from a fresh read of the resource: ``reconcile`` supersedes it."""
        now = self.clock.now()
        if now - self._checked.get(key, 0.0) < TEMPLATE_CHECK_SECONDS or key not in self._digests:
            return
        self._checked[key] = now
        release = parse_release(obj)
        digest = template_hash(await Workload(self.client, release, fence=self.elector.ensure).primary())
        if digest == self._digests[key]:
            return
        log.info("release %s/%s: the Deployment's template changed mid-release", *key)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        self._tasks.pop(key, None)
        self._stores.pop(key, None)
        self._digests.pop(key, None)
        await self.reconcile(await self.client.get(release_path(*key)))

    async def _supersede(self, release: Release, obj: dict[str, Any], digest: str) -> None:
        """The release in the status validated another template than the Deployment now holds:
        the canary route to 0 first, then a fresh release on the newest template, or none if
        that is the stable template (a revert) or the one rolled back last."""
        key = (release.namespace, release.name)
        status = obj.get("status") or {}
        self.elector.ensure()
        await build_router(self.client, release).reset()
        workload = Workload(self.client, release, fence=self.elector.ensure)
        old = str(status.get("releaseTemplateHash"))
        if digest in (status.get("stableTemplateHash"), status.get("rejectedTemplateHash")):
            await workload.scale_canary_to_zero()
            message = (
                f"the Deployment's template changed mid-release ({old} to {digest}, which was "
                "validated before): the release stopped, the canary at 0"
            )
            generation = int((obj.get("metadata") or {}).get("generation") or 0)
            changes = self._phase("Idle", None, message, generation)
            await self._write_status(obj, {**changes, "finalized": True, "weight": 0.0})
        else:
            message = (
                f"the Deployment's template changed mid-release ({old} to {digest}): the canary "
                "route is at 0 and the release starts again on the newest template"
            )
            self._tasks[key] = asyncio.create_task(self._run_release(release, obj, digest, fresh=True))
        log.info("release %s/%s: %s", *key, message)
        await self._event(obj, "TemplateChanged", message, warning=False)

    async def _run_release(self, release: Release, obj: dict[str, Any], digest: str, *, fresh: bool) -> None:
        workload = Workload(self.client, release, fence=self.elector.ensure)
        release = await self._with_secret(release)
        store = StatusStore(
            self.client,
            release,
            obj,
            fence=self.elector.ensure,
            now=self.clock.now,
            fresh=fresh,
        )
        self._stores[(release.namespace, release.name)] = store
        if fresh:
            await store.flush(releaseTemplateHash=digest, finalized=False)
        digest = str(store.status.get("releaseTemplateHash") or digest)
        self._digests[(release.namespace, release.name)] = digest
        primary = await workload.primary()
        state = store.state
        if state is None or not state.phase.final:
            await workload.bring_up_canary(primary)
        router = build_router(self.client, release)
        async with AsyncExitStack() as stack:
            metrics = await open_metrics(release, stack, self.shared)
            controller = RolloutController(
                release.rollout,
                metrics=metrics,
                router=FencedRouter(router, store, self.elector),
                clock=FlushingClock(self.clock, store),
                store=store,
                notifier=release.notifier(),
            )
            outcome = await controller.run()
        if outcome.phase is Phase.PROMOTED and template_hash(await workload.primary()) != digest:
            # Unpausing now would roll out a template nobody validated: left unfinished, the
            # next pass supersedes the release (check_template, reconcile).
            await store.flush()
            log.warning(
                "release %s/%s: a newer template arrived before promotion", release.namespace, release.name
            )
            return
        if outcome.phase is Phase.PROMOTED:
            # Not "Promoted" until the cluster is clean: the primary rolled, traffic back on it.
            await store.flush(phase="Promoting", condition="Progressing")
            await workload.roll_primary()
            await store.flush()  # a crash from here on redoes only idempotent steps
            self.elector.ensure()
            await router.reset()
            await workload.scale_canary_to_zero()
            done = "promoted: the Deployment runs the new template, the canary is at 0"
            await store.flush(
                phase="Promoted",
                condition="Promoted",
                weight=0.0,
                finalized=True,
                stableTemplateHash=digest,
                message=done,
            )
        else:
            await store.flush()
            await workload.scale_canary_to_zero()
            await store.flush(finalized=True, rejectedTemplateHash=digest)
        log.info("release %s/%s: %s", release.namespace, release.name, outcome.phase.value)

    async def _with_secret(self, release: Release) -> Release:
        prometheus = release.spec.metrics.prometheus
        if prometheus is None or prometheus.auth_secret_ref is None:
            return release
        ref = prometheus.auth_secret_ref
        secret = await self.client.get(f"/api/v1/namespaces/{release.namespace}/secrets/{ref.name}")
        raw = (secret.get("data") or {}).get(ref.key)
        if not isinstance(raw, str):
            raise InvalidRelease(
                f"spec.metrics.prometheus.authSecretRef: Secret {ref.name} has no key {ref.key!r}"
            )
        return release.with_bearer_token(base64.b64decode(raw).decode().strip())

    async def _mark_invalid(
        self, obj: dict[str, Any], key: tuple[str, str], generation: int, message: str
    ) -> None:
        if self._invalid.get(key) == (generation, message):
            return
        status = obj.get("status") or {}
        if (
            status.get("phase") != "Invalid"
            or status.get("observedGeneration") != generation
            or status.get("message") != message
        ):
            await self._write_status(obj, self._phase("Invalid", "Invalid", message, generation))
        self._invalid[key] = (generation, message)
        log.warning("release %s/%s is invalid: %s", *key, message)

    def _phase(
        self, phase: str, true: str | None, message: str, generation: int, **extra: Any
    ) -> dict[str, Any]:
        at = self.clock.now()
        found = conditions(true, reason=phase, message=message, generation=generation, at=at)
        return {
            "phase": phase,
            "message": message,
            "observedGeneration": generation,
            "conditions": found,
            **extra,
        }

    async def _write_status(self, obj: dict[str, Any], changes: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        body = {**obj, "status": {**(obj.get("status") or {}), **changes}}
        self.elector.ensure()
        with contextlib.suppress(RouterUnavailable):  # a conflict: the next pass reads it again
            await self.client.replace(
                release_path(str(meta["namespace"]), str(meta["name"]), status=True), body
            )
