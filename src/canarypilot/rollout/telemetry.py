"""The controller's own metrics, so dashboards and alerts see what it did.

The Grafana dashboard and the ``CanaryMetricsMissing`` alert rendered by
``canarypilot render`` read ``canarypilot_applied_weight`` (the weight the
router confirmed) and ``canarypilot_decisions_total``; the deltas and the safe
weight use the same names as the analysis service's gauges, so one dashboard
serves both ways of running canarypilot. Metrics are derived from the rollout
events, the same records the audit log keeps.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from canarypilot.rollout.events import EventKind, Phase, RolloutEvent


class RolloutMetrics:
    """Prometheus metrics of one rollout, in a registry of their own.

    >>> metrics = RolloutMetrics("checkout")
    >>> # controller = RolloutController(..., on_event=metrics.observe)
    """

    def __init__(self, service: str, registry: CollectorRegistry | None = None) -> None:
        self.service = service
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.applied_weight = Gauge(
            "canarypilot_applied_weight",
            "Canary weight (percent) the router last confirmed.",
            ["service"],
            registry=r,
        )
        self.decisions = Counter(
            "canarypilot_decisions",
            "Analyses of the rollout, by the judge's status.",
            ["service", "status"],
            registry=r,
        )
        self.verdicts = Counter(
            "canarypilot_verdicts",
            "Circuit-breaker actions, by action.",
            ["service", "action"],
            registry=r,
        )
        self.latency_delta = Gauge(
            "canary_latency_delta", "(p99 canary - p99 stable) / p99 stable at the last analysis.",
            ["service"], registry=r,
        )  # fmt: skip
        self.error_delta = Gauge(
            "canary_error_delta", "Error rate canary - error rate stable at the last analysis.",
            ["service"], registry=r,
        )  # fmt: skip
        self.safe_weight = Gauge(
            "canary_safe_weight", "Safe canary weight (percent) at the last analysis.",
            ["service"], registry=r,
        )  # fmt: skip
        self.phase = Gauge(
            "canarypilot_rollout_phase", "1 for the rollout's current phase, 0 for the others.",
            ["service", "phase"], registry=r,
        )  # fmt: skip

    def observe(self, event: RolloutEvent) -> None:
        """Update the metrics from one rollout event (use as the controller's ``on_event``)."""
        service = self.service
        data = event.data
        confirmed = {EventKind.ROUTER: "confirmed", EventKind.RECONCILED: "router_weight"}.get(event.kind)
        if confirmed is not None and isinstance(data.get(confirmed), int | float):
            self.applied_weight.labels(service).set(float(data[confirmed]))
        for phase in Phase:
            self.phase.labels(service, phase.value).set(1.0 if phase is event.phase else 0.0)
        if event.kind is EventKind.ANALYSIS:
            status = data.get("status")
            self.decisions.labels(service, str(status) if status else "error").inc()
            for gauge, key in (
                (self.latency_delta, "latency_delta"),
                (self.error_delta, "error_delta"),
                (self.safe_weight, "safe_weight"),
            ):
                value = data.get(key)
                if isinstance(value, int | float):
                    gauge.labels(service).set(float(value))
        elif event.kind is EventKind.VERDICT and data.get("action"):
            self.verdicts.labels(service, str(data["action"])).inc()
