"""What a release runs on inside the operator: a router fenced by the Lease and flushed to
the status before every change, a clock that flushes before every wait, the router the
spec names, and its metrics (the operator's shared, batching Prometheus client)."""

from __future__ import annotations

from contextlib import AsyncExitStack

from canarypilot.clock import Clock
from canarypilot.metrics.base import MetricsProvider
from canarypilot.operator.batching import SharedPrometheus
from canarypilot.operator.lease import LeaderElector
from canarypilot.operator.resource import Release
from canarypilot.operator.status import StatusStore
from canarypilot.routing.base import Router
from canarypilot.routing.gateway import HTTPRouteRouter
from canarypilot.routing.ingress import IngressRouter
from canarypilot.routing.kubernetes import KubeClient


class FencedRouter:
    """A router that writes the status first and checks the Lease before every change."""

    def __init__(self, inner: Router, store: StatusStore, elector: LeaderElector) -> None:
        self.inner, self.store, self.elector = inner, store, elector

    async def set_weight(self, weight: float) -> None:
        await self.store.flush()
        self.elector.ensure()
        await self.inner.set_weight(weight)

    async def get_weight(self) -> float:
        return await self.inner.get_weight()

    async def reset(self) -> None:
        await self.store.flush()
        self.elector.ensure()
        await self.inner.reset()


class FlushingClock:
    """The operator's clock: the status is written before the controller waits."""

    def __init__(self, inner: Clock, store: StatusStore) -> None:
        self.inner, self.store = inner, store

    def now(self) -> float:
        return self.inner.now()

    async def sleep(self, seconds: float) -> None:
        await self.store.flush()
        await self.inner.sleep(seconds)


def build_router(client: KubeClient, release: Release) -> Router:
    spec = release.spec
    if spec.router.ingress is not None:
        return IngressRouter(
            client,
            namespace=release.namespace,
            stable_ingress=spec.router.ingress.name,
            canary_service=release.canary_service,
        )
    assert spec.router.http_route is not None
    route = spec.router.http_route
    return HTTPRouteRouter(
        client,
        namespace=release.namespace,
        route=route.name,
        rule=route.rule,
        stable_service=spec.service.name,
        canary_service=release.canary_service,
    )


async def open_metrics(release: Release, stack: AsyncExitStack, shared: SharedPrometheus) -> MetricsProvider:
    """The release's metrics: the operator's shared, batching client of its Prometheus, or its
    own embedded scraper (which scrapes its own targets)."""
    settings = release.rollout.settings
    if settings.prometheus.url:
        return await shared.get(settings.prometheus, settings.query)
    from canarypilot.metrics.scrape import ScrapeMetrics

    provider = ScrapeMetrics.from_settings(settings, service=release.rollout.target.service)
    return await stack.enter_async_context(provider)
