"""What the analysis service tells about itself: /metrics series and JSON log lines.

Each app builds its own ``CollectorRegistry`` (never the global one), so two apps in
one process, or one per test, do not share or clash over series. The per-service
gauges keep the article's names (``canary_latency_delta``, ``canary_error_delta``,
``canary_safe_weight``) and are bounded to ``max_tracked_services`` services so a
caller cannot grow /metrics without limit.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from canarypilot.model import Decision

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServiceMetrics:
    """The service's own series, in a registry of its own."""

    def __init__(
        self, *, max_tracked_services: int = 1000, registry: CollectorRegistry | None = None
    ) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self._max_services = max_tracked_services
        self._services: set[str] = set()
        self._shown: dict[str, Decision] = {}
        r = self.registry
        self.latency_delta = Gauge(
            "canary_latency_delta",
            "(p99 canary - p99 stable) / p99 stable at the last analysis.",
            ["service"],
            registry=r,
        )
        self.error_delta = Gauge(
            "canary_error_delta",
            "Error rate canary - error rate stable (fraction) at the last analysis.",
            ["service"],
            registry=r,
        )
        self.safe_weight = Gauge(
            "canary_safe_weight",
            "Safe canary weight (percent) at the last analysis.",
            ["service"],
            registry=r,
        )
        self.decisions = Counter(
            "canarypilot_decisions", "Decisions answered on /analyze, by status.", ["status"], registry=r
        )
        self.analysis_seconds = Histogram(
            "canarypilot_analysis_duration_seconds",
            "Time to answer /analyze with a decision, cache hits included.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.backend_errors = Counter(
            "canarypilot_backend_errors",
            "Analyses that failed because the metrics backend failed or refused the query.",
            ["kind"],
            registry=r,
        )
        self.rejected = Counter(
            "canarypilot_rejected_requests",
            "Requests refused before analysis, by HTTP status.",
            ["code"],
            registry=r,
        )
        self.untracked = Counter(
            "canarypilot_untracked_services",
            "Decisions whose per-service gauges were not set: max_tracked_services reached.",
            registry=r,
        )
        for status in ("proceed", "hold", "rollback"):
            self.decisions.labels(status)

    def observe(self, decision: Decision, seconds: float) -> None:
        """Record one answered decision."""
        self.decisions.labels(decision.status.value).inc()
        self.analysis_seconds.observe(seconds)
        if decision.target is None:
            return
        service = decision.target.service
        if self._shown.get(service) is decision:
            return  # a cached decision: the gauges already show it
        if service not in self._services:
            if len(self._services) >= self._max_services:
                self.untracked.inc()
                return
            self._services.add(service)
        self._shown[service] = decision
        _set(self.latency_delta.labels(service), decision.latency_delta)
        _set(self.error_delta.labels(service), decision.error_delta)
        _set(self.safe_weight.labels(service), decision.safe_weight)


def _set(gauge: Any, value: float | None) -> None:
    # No value is NaN on /metrics: Prometheus then has "no number", never a made-up zero.
    gauge.set(float("nan") if value is None else value)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, message and the record's ``extra`` fields."""

    _STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in self._STANDARD and key != "color_message" and not key.startswith("_"):
                out[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            out["error_type"] = record.exc_info[0].__name__
            out["traceback"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def json_logging(level: int = logging.INFO) -> logging.Handler:
    """Route the service's and uvicorn's loggers to stderr as JSON lines."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    for name in ("canarypilot", "uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False
    return handler
