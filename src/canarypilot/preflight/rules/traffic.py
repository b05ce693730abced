"""CP1xx — shifting traffic without dropping requests: termination grace and ingress retries."""

from __future__ import annotations

from collections.abc import Iterator

from canarypilot.preflight.findings import Context, Finding, Rule, Severity, rule
from canarypilot.preflight.loader import Manifest
from canarypilot.preflight.workloads import WORKLOADS, annotation, ignored, pod_spec, seconds

NGINX = "nginx.ingress.kubernetes.io/"
#: ingress-nginx's default proxy-read-timeout: a request may legitimately be in flight this long.
NGINX_READ_TIMEOUT = 60.0
#: Kubernetes' default terminationGracePeriodSeconds.
DEFAULT_GRACE = 30.0


def stable_ingress(ctx: Context, workload: Manifest) -> tuple[str | None, Manifest | None]:
    """The name of a Rollout's nginx stable Ingress and the Ingress itself when it is in the files."""
    name = workload.get("spec", "strategy", "canary", "trafficRouting", "nginx", "stableIngress")
    if not isinstance(name, str):
        return None, None
    return name, ctx.find("Ingress", name, workload.namespace)


@rule(
    "CP101",
    "termination-grace-shorter-than-drain",
    Severity.ERROR,
    summary="Pods are killed before the ingress has drained their connections.",
    why=(
        "When traffic shifts away from a pod, requests already in flight through the ingress may run "
        "for up to its read timeout (ingress-nginx: 60 s). A pod whose terminationGracePeriodSeconds "
        "(default 30 s) is shorter is SIGKILLed mid-request: the article's 502 Bad Gateway."
    ),
    fix=(
        "Set spec.template.spec.terminationGracePeriodSeconds at least as long as the drain timeout "
        "(e.g. 75 for a 60 s timeout plus a preStop sleep), or shorten the ingress timeout."
    ),
)
def grace_vs_drain(r: Rule, ctx: Context) -> Iterator[Finding]:
    for workload in ctx.of_kind(*WORKLOADS):
        found = pod_spec(workload)
        if found is None or ignored(workload, r.id):
            continue
        path, spec = found
        grace = seconds(spec.get("terminationGracePeriodSeconds"))
        grace = DEFAULT_GRACE if grace is None else grace
        drain, source = _drain(ctx, workload)
        if drain is not None and grace < drain:
            where = "set" if "terminationGracePeriodSeconds" in spec else "default"
            yield r.finding(
                workload,
                (*path, "terminationGracePeriodSeconds"),
                f"terminationGracePeriodSeconds is {grace:g}s ({where}), shorter than the {drain:g}s "
                f"drain timeout ({source})",
            )


def _drain(ctx: Context, workload: Manifest) -> tuple[float | None, str]:
    own = seconds(annotation(workload, "drain-timeout"))
    if own is not None:
        return own, "canarypilot.io/drain-timeout"
    name, ingress = stable_ingress(ctx, workload)
    if ingress is not None:
        value = seconds(ingress.annotations.get(NGINX + "proxy-read-timeout"))
        if value is not None:
            return value, f"proxy-read-timeout of Ingress {name}"
    if ctx.options.drain_timeout_seconds is not None:
        return ctx.options.drain_timeout_seconds, "--drain-timeout"
    if name is not None:
        return NGINX_READ_TIMEOUT, f"ingress-nginx's default read timeout, Ingress {name}"
    return None, ""


def _is_nginx(ingress: Manifest) -> bool:
    cls = ingress.get("spec", "ingressClassName") or ingress.annotations.get("kubernetes.io/ingress.class")
    return (isinstance(cls, str) and "nginx" in cls) or any(k.startswith(NGINX) for k in ingress.annotations)


@rule(
    "CP102",
    "missing-proxy-next-upstream-retries",
    Severity.WARNING,
    summary="The ingress does not retry on another pod when a pod goes away mid-shift.",
    why=(
        "During a weight change pods leave the upstream set; ingress-nginx retries only on connection "
        "errors and timeouts by default, not on the 502/503 a terminating pod returns, and without "
        "proxy-next-upstream-timeout a retry can outlast the client's patience."
    ),
    fix=(
        'Annotate the Ingress: nginx.ingress.kubernetes.io/proxy-next-upstream: "error timeout http_502 '
        'http_503", proxy-next-upstream-tries: "3", proxy-next-upstream-timeout: "10" (the annotation '
        "is -tries, not the article's -trials)."
    ),
)
def next_upstream(r: Rule, ctx: Context) -> Iterator[Finding]:
    referenced: set[str] = set()
    for rollout in ctx.of_kind("Rollout"):
        name, ingress = stable_ingress(ctx, rollout)
        if name is None or ignored(rollout, r.id):
            continue
        referenced.add(name)
        if ingress is None:
            yield r.finding(
                rollout,
                ("spec", "strategy", "canary", "trafficRouting", "nginx", "stableIngress"),
                f"stable Ingress {name} is not among the files checked: its retry annotations "
                "cannot be verified",
                severity=Severity.NOTE,
            )
    for ingress in ctx.of_kind("Ingress"):
        if ignored(ingress, r.id) or not (ingress.name in referenced or _is_nginx(ingress)):
            continue
        ann = ingress.annotations
        path = ("metadata", "annotations")
        if NGINX + "proxy-next-upstream-trials" in ann:
            yield r.finding(
                ingress,
                path,
                "annotation proxy-next-upstream-trials does not exist (ingress-nginx ignores it)",
            )
        conditions = ann.get(NGINX + "proxy-next-upstream", "error timeout").split()
        missing = [c for c in ("error", "timeout", "http_502", "http_503") if c not in conditions]
        if missing:
            yield r.finding(ingress, path, f"proxy-next-upstream does not retry on {', '.join(missing)}")
        tries = ann.get(NGINX + "proxy-next-upstream-tries")
        if tries is not None and tries.strip() in ("0", "1"):
            yield r.finding(ingress, path, f"proxy-next-upstream-tries is {tries}: no retry on another pod")
        if NGINX + "proxy-next-upstream-timeout" not in ann:
            yield r.finding(
                ingress, path, "proxy-next-upstream-timeout is not set: retries are unbounded in time"
            )
