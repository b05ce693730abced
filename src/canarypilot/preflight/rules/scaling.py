"""CP2xx — pods that take traffic before they can serve it, and autoscalers that fight the canary."""

from __future__ import annotations

from collections.abc import Iterator

from canarypilot.preflight.findings import Context, Finding, Rule, Severity, rule
from canarypilot.preflight.workloads import WORKLOADS, containers, ignored, integer, pod_spec

CANARY_KINDS = ("Rollout",)


@rule(
    "CP201",
    "readiness-success-threshold",
    Severity.WARNING,
    summary="A container is marked Ready after a single successful probe (or has no readiness probe).",
    why=(
        "One lucky probe during warm-up (cold caches, a database pool still connecting) puts the pod in "
        "the Service and the canary takes traffic it cannot serve: the article's 503s during a canary pause."
    ),
    fix="Add a readinessProbe with successThreshold: 2 (or more) on an endpoint that checks dependencies.",
)
def readiness(r: Rule, ctx: Context) -> Iterator[Finding]:
    for workload in ctx.of_kind(*WORKLOADS):
        if ignored(workload, r.id):
            continue
        for path, container in containers(workload):
            name = container.get("name", "?")
            probe = container.get("readinessProbe")
            if not isinstance(probe, dict):
                yield r.finding(workload, path, f"container {name} has no readinessProbe")
                continue
            threshold = integer(probe.get("successThreshold"))
            if threshold is None or threshold < 2:
                shown = "not set (1)" if threshold is None else str(threshold)
                yield r.finding(
                    workload,
                    (*path, "readinessProbe", "successThreshold"),
                    f"container {name}: readinessProbe.successThreshold is {shown}",
                )


@rule(
    "CP202",
    "missing-min-ready-seconds",
    Severity.WARNING,
    summary="New pods count as available the moment they are Ready.",
    why=(
        "Without minReadySeconds a pod that turns Ready and then fails (connection pool initialisation "
        "took 45 s in the article) still counts as available, so the rollout progresses on pods that "
        "cannot hold load: the article's DeadlineExceeded."
    ),
    fix="Set spec.minReadySeconds: 30 (or the warm-up time of your pods).",
)
def min_ready(r: Rule, ctx: Context) -> Iterator[Finding]:
    for workload in ctx.of_kind(*WORKLOADS):
        if pod_spec(workload) is None or ignored(workload, r.id):
            continue
        value = integer(workload.get("spec", "minReadySeconds"))
        if not value:
            yield r.finding(workload, ("spec",), "spec.minReadySeconds is not set")


def _targets(ctx: Context, kind: str, name: str, namespace: str | None) -> bool:
    """Whether a scale target is a canary workload: a Rollout, or a Deployment a Rollout references."""
    if kind == "Rollout":
        return True
    for rollout in ctx.of_kind("Rollout"):
        ref = rollout.get("spec", "workloadRef")
        if isinstance(ref, dict) and ref.get("kind") == kind and ref.get("name") == name:
            return namespace in (None, rollout.namespace) or rollout.namespace is None
    return False


@rule(
    "CP203",
    "hpa-not-pinned-during-canary",
    Severity.WARNING,
    summary="A HorizontalPodAutoscaler can resize the workload while the canary runs.",
    why=(
        "Warm-up CPU spikes on canary pods make the HPA add replicas mid-rollout; the new pods fail "
        "readiness while their pools initialise, and the rollout hits its progress deadline."
    ),
    fix=(
        "Pin the HPA during the canary (minReplicas = maxReplicas, e.g. kubectl patch hpa NAME -p "
        '\'{"spec":{"minReplicas":N,"maxReplicas":N}}\') and restore it after promotion; if your '
        'pipeline does that, annotate the HPA canarypilot.io/pinned-during-canary: "true".'
    ),
)
def hpa(r: Rule, ctx: Context) -> Iterator[Finding]:
    for scaler in ctx.of_kind("HorizontalPodAutoscaler"):
        ref = scaler.get("spec", "scaleTargetRef")
        if not isinstance(ref, dict) or ignored(scaler, r.id):
            continue
        if not _targets(ctx, str(ref.get("kind")), str(ref.get("name")), scaler.namespace):
            continue
        if scaler.annotations.get("canarypilot.io/pinned-during-canary", "").lower() == "true":
            continue
        low = integer(scaler.get("spec", "minReplicas"))
        high = integer(scaler.get("spec", "maxReplicas"))
        if low is None or high is None or low != high:
            yield r.finding(
                scaler,
                ("spec", "maxReplicas"),
                f"scales {ref.get('kind')} {ref.get('name')} between {1 if low is None else low} and "
                f"{high} replicas during the canary",
            )


@rule(
    "CP204",
    "vpa-not-off",
    Severity.WARNING,
    summary="A VerticalPodAutoscaler may evict and resize pods during the canary.",
    why=(
        "In Auto/Recreate/Initial mode the VPA applies recommendations learnt from warm-up spikes (the "
        "article: 2.4 CPU requested for pods needing 1.8) and evicts pods mid-rollout: FailedScheduling."
    ),
    fix='Set spec.updatePolicy.updateMode: "Off" during the canary; re-enable it after promotion.',
)
def vpa(r: Rule, ctx: Context) -> Iterator[Finding]:
    for scaler in ctx.of_kind("VerticalPodAutoscaler"):
        if ignored(scaler, r.id):
            continue
        mode = scaler.get("spec", "updatePolicy", "updateMode")
        if mode != "Off":
            shown = "not set (Auto)" if mode is None else repr(mode)
            ref = scaler.get("spec", "targetRef") or {}
            target = f"{ref.get('kind')} {ref.get('name')}" if isinstance(ref, dict) else "its target"
            yield r.finding(
                scaler, ("spec", "updatePolicy", "updateMode"), f"updateMode is {shown} for {target}"
            )
