"""Prometheus recording rules that compute the product's decision inputs inside Prometheus.

The article's monitoring section records ``canary_latency_delta`` and
``canary_error_delta`` and derives a safe weight from them. These rules do the
same from the raw request metrics, with the product's semantics (DESIGN.md):

* ``latency_delta = (p99_canary - p99_stable) / p99_stable`` and
  ``error_delta = err_canary - err_stable`` (fractions);
* ``safe weight = clamp(min + safety * (max - min))`` with
  ``safety = max(floor, exp(-k * ld) * max(error_floor, 1 - s * ed))``, rounded to
  one decimal;
* no data is never a weight: the deltas exist only while both versions served
  enough requests in the window and the stable p99 is above zero.

Recorded series are named ``<namespace>:<name>`` (``canarypilot:canary_latency_delta``).
Instrumented metrics never contain a colon, so the recorded series cannot collide
with the analysis service's own ``canary_latency_delta`` gauges, and a dashboard
can show both side by side. Every name, label, threshold and constant comes from
``Settings``; label values are quoted with :mod:`canarypilot.metrics.selectors`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from canarypilot.metrics.selectors import extra_matchers, quote, regex_alternation, render, selector
from canarypilot.model import validate_name
from canarypilot.policy import QueryPolicy, Settings


@dataclass(frozen=True, slots=True)
class SeriesNames:
    """The names of the recorded series, derived from ``monitoring.rule_namespace``."""

    quantile: str
    requests: str
    errors: str
    error_ratio: str
    latency_delta: str
    error_delta: str
    safe_weight: str

    @classmethod
    def of(cls, settings: Settings) -> SeriesNames:
        ns = settings.monitoring.rule_namespace
        return cls(
            quantile=f"{ns}:latency_quantile_seconds",
            requests=f"{ns}:requests:increase",
            errors=f"{ns}:errors:increase",
            error_ratio=f"{ns}:error_ratio",
            latency_delta=f"{ns}:canary_latency_delta",
            error_delta=f"{ns}:canary_error_delta",
            safe_weight=f"{ns}:canary_safe_weight",
        )


def number(value: float) -> str:
    """A float as PromQL reads it, without a trailing ``.0`` noise: ``0.15``, ``100``."""
    return f"{value:g}" if float(value).is_integer() else repr(float(value))


def version_matcher(query: QueryPolicy, version: str) -> str:
    """``version="v2-canary"``, with the value quoted."""
    return f"{query.version_label}={quote(version)}"


def raw_selector(settings: Settings, services: Sequence[str]) -> str:
    """Matchers of the raw request metrics: the two versions, the services if given, extras."""
    query = settings.query
    versions = [query.stable_version, query.canary_version]
    if services:
        return selector(query, services, versions)
    version = f"{query.version_label}=~{regex_alternation(versions)}"
    return ",".join([version, *extra_matchers(query.extra_selector)])


def recording_rules(settings: Settings, services: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The recording rules, in evaluation order (later rules read earlier ones)."""
    for service in services:
        validate_name(service, what="service")
    q = settings.query
    slo = settings.slo
    ip = settings.interpolation
    names = SeriesNames.of(settings)
    sel = raw_selector(settings, services)
    by = f"{q.job_label}, {q.version_label}"
    canary = version_matcher(q, q.canary_version)
    stable = version_matcher(q, q.stable_version)
    v = q.version_label

    requests = render(q.requests_template, q, sel=sel, by=by)
    # A version without a single 5xx has no error series at all: that is zero errors, not no data.
    errors = f"({render(q.errors_template, q, sel=sel, by=by)}) or ({names.requests} * 0)"
    judged = (
        f"({names.requests}{{{canary}}} >= {number(slo.min_canary_requests)})\n"
        f"and on ({q.job_label}) ({names.requests}{{{stable}}} >= {number(slo.min_stable_requests)})"
    )
    # Comparisons drop NaN (a version with no observations) and a zero stable p99.
    latency_delta = (
        f"(\n  ({names.quantile}{{{canary}}} >= 0)\n  - ignoring ({v}) {names.quantile}{{{stable}}}\n)\n"
        f"/ ignoring ({v}) ({names.quantile}{{{stable}}} > 0)\n"
        f"and on ({q.job_label}) {judged}"
    )
    error_delta = (
        f"{names.error_ratio}{{{canary}}}\n- ignoring ({v}) {names.error_ratio}{{{stable}}}\n"
        f"and on ({q.job_label}) {judged}"
    )
    safety = (
        f"clamp_min(\n    exp(-{number(ip.latency_decay)} * {names.latency_delta})\n"
        f"    * clamp_min(1 - {number(ip.error_slope)} * {names.error_delta}, {number(ip.error_floor)}),\n"
        f"    {number(ip.safety_floor)}\n  )"
    )
    span = ip.max_weight - ip.min_weight
    safe_weight = (
        f"clamp(\n  round({number(ip.min_weight)} + {safety} * {number(span)}, 0.1),\n"
        f"  {number(ip.min_weight)}, {number(ip.max_weight)}\n)"
    )
    return [
        {"record": names.quantile, "expr": render(q.latency_template, q, sel=sel, by=by)},
        {"record": names.requests, "expr": requests},
        {"record": names.errors, "expr": errors},
        {"record": names.error_ratio, "expr": f"{names.errors} / ({names.requests} > 0)"},
        {"record": names.latency_delta, "expr": latency_delta},
        {"record": names.error_delta, "expr": error_delta},
        {"record": names.safe_weight, "expr": safe_weight},
    ]


def rule_file(groups: Sequence[dict[str, Any]]) -> str:
    """A Prometheus rule file (YAML) holding ``groups``."""
    return dump_yaml({"groups": list(groups)})


def render_recording_rules(
    settings: Settings, services: Sequence[str] = (), *, interval: str | None = None
) -> str:
    """The ``canarypilot render prometheus-rules`` file."""
    group: dict[str, Any] = {"name": f"{settings.monitoring.rule_namespace}.recording"}
    if interval:
        group["interval"] = interval
    group["rules"] = recording_rules(settings, services)
    return rule_file([group])


class _LiteralDumper(yaml.SafeDumper):
    """Multi-line strings as ``|`` blocks, so PromQL stays readable in the rule file."""


def _str_presenter(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_LiteralDumper.add_representer(str, _str_presenter)


def dump_yaml(data: Any) -> str:
    return yaml.dump(data, Dumper=_LiteralDumper, sort_keys=False, allow_unicode=True, width=110)
