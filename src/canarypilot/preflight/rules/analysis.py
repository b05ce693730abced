"""CP3xx — Argo Rollouts analysis that cannot do its job: never fails, bad weights, pruned fields."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from canarypilot.preflight.findings import Context, Finding, Rule, Severity, rule
from canarypilot.preflight.loader import Manifest
from canarypilot.preflight.schema import bundled, unknown_fields
from canarypilot.preflight.workloads import ignored, integer, replicas, seconds

TEMPLATES = ("AnalysisTemplate", "ClusterAnalysisTemplate", "AnalysisRun")
#: Argo's Web metric provider gives up after this many seconds when timeoutSeconds is not set.
WEB_DEFAULT_TIMEOUT = 10.0


def metrics(manifest: Manifest) -> Iterator[tuple[tuple[str | int, ...], dict[str, Any]]]:
    for index, metric in enumerate(manifest.get("spec", "metrics") or []):
        if isinstance(metric, dict):
            yield ("spec", "metrics", index), metric


def steps(rollout: Manifest) -> Iterator[tuple[tuple[str | int, ...], dict[str, Any]]]:
    for index, step in enumerate(rollout.get("spec", "strategy", "canary", "steps") or []):
        if isinstance(step, dict):
            yield ("spec", "strategy", "canary", "steps", index), step


@rule(
    "CP301",
    "analysis-can-never-fail",
    Severity.ERROR,
    summary="An analysis metric can never fail, so a bad canary is never aborted by it.",
    why=(
        "Argo fails a metric when failed measurements exceed failureLimit after its count measurements "
        "(one when neither count nor interval is set). With failureLimit >= count, or no success or "
        "failure condition at all, every result passes: the article's template (failureLimit 2, one "
        "measurement) only aborts on HTTP errors."
    ),
    fix="Take several measurements (count: 3, interval: 30s) and keep failureLimit below count (e.g. 1).",
)
def never_fails(r: Rule, ctx: Context) -> Iterator[Finding]:
    for template in ctx.of_kind(*TEMPLATES):
        if ignored(template, r.id):
            continue
        for path, metric in metrics(template):
            name = metric.get("name", "?")
            if "successCondition" not in metric and "failureCondition" not in metric:
                yield r.finding(
                    template, path, f"metric {name} has neither successCondition nor failureCondition"
                )
                continue
            limit = integer(metric.get("failureLimit", 0))
            count = (
                integer(metric.get("count")) if "count" in metric else (None if "interval" in metric else 1)
            )
            if limit is None:
                continue
            if limit < 0:
                yield r.finding(
                    template,
                    (*path, "failureLimit"),
                    f"metric {name}: failureLimit {limit} allows unlimited failures",
                )
            elif count is not None and limit >= count:
                yield r.finding(
                    template,
                    (*path, "failureLimit"),
                    f"metric {name}: failureLimit {limit} >= {count} measurement(s): it can never fail",
                )


@rule(
    "CP302",
    "invalid-set-weight",
    Severity.ERROR,
    summary="A setWeight Argo Rollouts does not accept.",
    why=(
        "setWeight is a fixed integer percentage (0-100). Argo cannot take it from an analysis result: "
        "${analysis.result.weight} is not substituted, and the API server rejects the Rollout."
    ),
    fix=(
        "Use a ladder of integer setWeight steps, each followed by an analysis that gates it "
        "(canarypilot render argo writes one), or let canarypilot drive the traffic router itself."
    ),
)
def set_weight(r: Rule, ctx: Context) -> Iterator[Finding]:
    for rollout in ctx.of_kind("Rollout"):
        if ignored(rollout, r.id):
            continue
        for path, step in steps(rollout):
            for key, where in (
                ("setWeight", (*path, "setWeight")),
                ("weight", (*path, "setCanaryScale", "weight")),
            ):
                holder = step if key == "setWeight" else step.get("setCanaryScale")
                if not isinstance(holder, dict) or key not in holder:
                    continue
                value = holder[key]
                if isinstance(value, bool) or not isinstance(value, int):
                    yield r.finding(rollout, where, f"{key} {value!r} is not an integer")
                elif not 0 <= value <= 100:
                    yield r.finding(rollout, where, f"{key} {value} is outside 0-100")


@rule(
    "CP303",
    "analysis-timeout-vs-interval",
    Severity.WARNING,
    summary="A Web metric's timeout does not fit its interval or the analyzer's own deadline.",
    why=(
        "A timeout at or above the measurement interval stacks slow measurements; a timeout shorter "
        "than the analyzer's Prometheus timeout makes Argo record an Error (and retry) while the "
        "analyzer was about to answer: a rollout 'paused indefinitely'."
    ),
    fix=(
        "Set provider.web.timeoutSeconds above the analyzer's prometheus.timeout_seconds and below "
        "the metric's interval (e.g. interval: 30s, timeoutSeconds: 15)."
    ),
)
def timeouts(r: Rule, ctx: Context) -> Iterator[Finding]:
    for template in ctx.of_kind(*TEMPLATES):
        if ignored(template, r.id):
            continue
        for path, metric in metrics(template):
            web = metric.get("provider", {}).get("web") if isinstance(metric.get("provider"), dict) else None
            if not isinstance(web, dict):
                continue
            given = integer(web.get("timeoutSeconds"))
            timeout = float(given) if given is not None else WEB_DEFAULT_TIMEOUT
            shown = f"{timeout:g}s" + ("" if given is not None else " (default)")
            where = (*path, "provider", "web", "timeoutSeconds" if given is not None else "url")
            interval = seconds(metric.get("interval"))
            if interval is not None and timeout >= interval:
                yield r.finding(
                    template, where, f"timeout {shown} is not shorter than the interval {interval:g}s"
                )
            analyzer = ctx.options.analyzer_timeout_seconds
            if timeout <= analyzer:
                yield r.finding(
                    template,
                    where,
                    f"timeout {shown} does not exceed the analyzer's Prometheus timeout {analyzer:g}s",
                )


@rule(
    "CP304",
    "unknown-field",
    Severity.ERROR,
    summary="A field the Argo Rollouts CRD does not declare: the API server silently drops it.",
    why=(
        "Kubernetes prunes fields a CRD's structural schema does not know, without an error. The "
        "article's Web provider sets timeout: 15s; the field is timeoutSeconds, so the setting vanishes "
        "and calls time out after the default 10 s."
    ),
    fix="Rename the field to the one the schema declares (see the suggestion), or remove it.",
)
def unknown(r: Rule, ctx: Context) -> Iterator[Finding]:
    trees = bundled()
    for manifest in ctx.manifests:
        tree = trees.get(manifest.kind)
        if tree is None or not manifest.api_version.startswith("argoproj.io/") or ignored(manifest, r.id):
            continue
        for path, close in unknown_fields(manifest.data, tree):
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
            yield r.finding(manifest, path, f"{path[-1]} is not a field of {manifest.kind}{hint}")


@rule(
    "CP305",
    "canary-scale-pinned-under-weight",
    Severity.WARNING,
    summary="setCanaryScale pins the canary's pod count while later setWeight steps raise its traffic.",
    why=(
        "An explicit setCanaryScale (replicas or weight) stays in force until a setCanaryScale with "
        "matchTrafficWeight: true. Later setWeight steps then push more traffic onto the same few pods."
    ),
    fix="Add a step setCanaryScale: {matchTrafficWeight: true} before raising the weight.",
)
def pinned_scale(r: Rule, ctx: Context) -> Iterator[Finding]:
    for rollout in ctx.of_kind("Rollout"):
        if ignored(rollout, r.id):
            continue
        total = replicas(rollout)
        pinned: int | None = None
        for path, step in steps(rollout):
            scale = step.get("setCanaryScale")
            if isinstance(scale, dict):
                if scale.get("matchTrafficWeight") is True:
                    pinned = None
                elif integer(scale.get("replicas")) is not None:
                    pinned = integer(scale.get("replicas"))
                elif integer(scale.get("weight")) is not None:
                    pinned = math.ceil(total * (integer(scale.get("weight")) or 0) / 100)
            weight = integer(step.get("setWeight"))
            if pinned is not None and weight is not None and math.ceil(total * weight / 100) > pinned:
                yield r.finding(
                    rollout,
                    (*path, "setWeight"),
                    f"setWeight {weight} sends {weight}% of traffic to {pinned} canary pod(s), "
                    f"sized for {math.ceil(total * weight / 100)}",
                )
