"""CP4xx/CP5xx — capacity the canary adds (database connections, memory) and metrics too coarse to judge."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from canarypilot.preflight.findings import Context, Finding, Rule, Severity, rule
from canarypilot.preflight.loader import Manifest
from canarypilot.preflight.rules.analysis import TEMPLATES, metrics
from canarypilot.preflight.workloads import (
    WORKLOADS,
    annotation,
    canary_peak_pods,
    containers,
    ignored,
    integer,
    quantity,
    seconds,
)

#: Environment variables that commonly carry a per-pod connection pool ceiling.
POOL_VARIABLES = (
    "DB_MAX_OPEN_CONNS",
    "DB_MAX_OPEN_CONNECTIONS",
    "DB_MAX_CONNECTIONS",
    "DB_POOL_SIZE",
    "DATABASE_POOL_SIZE",
    "DATABASE_MAX_CONNECTIONS",
    "SPRING_DATASOURCE_HIKARI_MAXIMUM_POOL_SIZE",
    "SPRING_DATASOURCE_HIKARI_MAXIMUMPOOLSIZE",
)


@rule(
    "CP401",
    "database-pool-exceeds-max-connections",
    Severity.ERROR,
    summary="Stable plus canary pods can open more database connections than the database accepts.",
    why=(
        "Canary pods open fresh pools while the stable pods still hold theirs: at the busiest step "
        "max open connections x (stable + canary pods) must fit the database's max_connections, or "
        "new connections fail with 5xx (the article: 12.4% errors at 30% weight, 100/100 connections)."
    ),
    fix=(
        "Lower the per-pod pool (DB_MAX_OPEN_CONNS), scale the canary with fewer pods, use "
        "dynamicStableScale, or put a pooler (PgBouncer) in front of the database."
    ),
)
def database_pool(r: Rule, ctx: Context) -> Iterator[Finding]:
    for workload in ctx.of_kind(*WORKLOADS):
        if ignored(workload, r.id):
            continue
        per_pod = integer(annotation(workload, "db-max-open-connections"))
        where: tuple[str | int, ...] = ("metadata", "annotations")
        if per_pod is None:
            per_pod, where = _pool_from_env(workload)
        if per_pod is None:
            continue
        limit = integer(annotation(workload, "db-max-connections"))
        source = "canarypilot.io/db-max-connections"
        if limit is None:
            limit, source = ctx.options.db_max_connections, "--db-max-connections"
        if limit is None:
            yield r.finding(
                workload,
                where,
                f"pool of {per_pod} connections per pod: give the database's max_connections "
                "(--db-max-connections or the canarypilot.io/db-max-connections annotation) to check it",
                severity=Severity.NOTE,
            )
            continue
        stable, canary = canary_peak_pods(workload)
        needed = per_pod * (stable + canary)
        if needed > limit:
            yield r.finding(
                workload,
                where,
                f"{per_pod} connections x ({stable} stable + {canary} canary pods) = {needed} > "
                f"{limit} max connections ({source})",
            )


def _pool_from_env(workload: Manifest) -> tuple[int | None, tuple[str | int, ...]]:
    total, where = 0, None
    for path, container in containers(workload):
        for index, var in enumerate(container.get("env") or []):
            if isinstance(var, dict) and var.get("name") in POOL_VARIABLES:
                value = integer(var.get("value"))
                if value is not None:
                    total += value
                    where = where or (*path, "env", index, "value")
                    break
    return (total, where) if where else (None, ())


@rule(
    "CP402",
    "memory-limit-without-warmup-headroom",
    Severity.WARNING,
    summary="The memory limit leaves less than 20% above the steady-state memory for warm-up.",
    why=(
        "Canary pods warm caches, JIT and connection pools on their first traffic and use more memory "
        "than at steady state (the article: 1.8 GB during warm-up against 1.2 GB): a tight limit "
        "OOM-kills them exactly when they start taking traffic."
    ),
    fix=(
        "Raise resources.limits.memory to at least 1.2 x the steady-state usage (the request, or the "
        "canarypilot.io/steady-state-memory annotation) during the canary."
    ),
)
def memory_headroom(r: Rule, ctx: Context) -> Iterator[Finding]:
    headroom = ctx.options.memory_headroom
    for workload in ctx.of_kind(*WORKLOADS):
        if ignored(workload, r.id):
            continue
        steady_declared = quantity(annotation(workload, "steady-state-memory"))
        for path, container in containers(workload):
            limits = _section(container, "limits")
            limit_text = limits.get("memory")
            limit = quantity(limit_text)
            request = quantity(_section(container, "requests").get("memory"))
            steady = max(v for v in (steady_declared, request, 0.0) if v is not None)
            if limit is None or not steady:
                continue
            if limit < steady * (1 + headroom):
                yield r.finding(
                    workload,
                    (*path, "resources", "limits", "memory"),
                    f"container {container.get('name', '?')}: limit {limit_text} is less than "
                    f"{1 + headroom:g} x the steady-state {_bytes(steady)}",
                )


def _section(container: dict[str, Any], name: str) -> dict[str, Any]:
    resources = container.get("resources")
    section = resources.get(name) if isinstance(resources, dict) else None
    return section if isinstance(section, dict) else {}


def _bytes(value: float) -> str:
    for unit, size in (("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if value >= size:
            return f"{value / size:.3g}{unit}"
    return f"{value:g}"


_RANGE = re.compile(r"\[(\d+(?:ms|s|m|h))(?::[^\]]*)?\]")


@rule(
    "CP501",
    "rate-window-vs-scrape-interval",
    Severity.WARNING,
    summary="A rate window shorter than four scrape intervals.",
    why=(
        "rate() needs at least two samples in its window and is noisy with few: with a window under 4x "
        "the scrape interval one late scrape swings the p99 and the error rate, and the safe weight "
        "oscillates (the article's 10% -> 5% -> 10%)."
    ),
    fix="Use a window of at least 4 x scrape_interval (5m with a 30s interval), or scrape more often.",
)
def scrape_vs_window(r: Rule, ctx: Context) -> Iterator[Finding]:
    window = ctx.options.rate_window_seconds
    longest = ctx.options.scrape_interval_seconds
    for monitor in ctx.of_kind("ServiceMonitor", "PodMonitor"):
        key = "endpoints" if monitor.kind == "ServiceMonitor" else "podMetricsEndpoints"
        for index, endpoint in enumerate(monitor.get("spec", key) or []):
            interval = seconds(endpoint.get("interval")) if isinstance(endpoint, dict) else None
            if interval is None:
                continue
            longest = max(longest or 0.0, interval)
            if window < 4 * interval and not ignored(monitor, r.id):
                yield r.finding(
                    monitor,
                    ("spec", key, index, "interval"),
                    f"scrape interval {interval:g}s needs a rate window of at least {4 * interval:g}s; "
                    f"the analysis uses {window:g}s",
                )
    if longest is None:
        return
    for template in ctx.of_kind(*TEMPLATES):
        for path, metric in metrics(template):
            prom = (
                metric.get("provider", {}).get("prometheus")
                if isinstance(metric.get("provider"), dict)
                else None
            )
            query = prom.get("query") if isinstance(prom, dict) else None
            if not isinstance(query, str) or ignored(template, r.id):
                continue
            for text in _RANGE.findall(query):
                value = seconds(text)
                if value is not None and value < 4 * longest:
                    yield r.finding(
                        template,
                        (*path, "provider", "prometheus", "query"),
                        f"range [{text}] is shorter than 4 x the {longest:g}s scrape interval",
                    )
