"""What the rules need to know about workloads: pod templates, containers, replicas, units.

Kubernetes spells durations and quantities in several ways (``30``, ``"30s"``,
``1.5Gi``, ``512M``); these helpers read them once, and return None for values
that cannot be known statically (templated ``{{args.x}}``, placeholders).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

from canarypilot.preflight.loader import Manifest

WORKLOADS = ("Rollout", "Deployment", "StatefulSet", "DaemonSet")
#: Annotation prefix for facts only the user knows (database size, drain timeout, ...).
ANNOTATION = "canarypilot.io/"

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
_QUANTITY = re.compile(r"^([0-9.]+(?:[eE][+-]?\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|K|M|G|T|P|E|m)?$")
_FACTORS = {
    None: 1,
    "m": 0.001,
    "k": 1e3,
    "K": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}


def seconds(value: Any) -> float | None:
    """``30``, ``"30"``, ``"30s"``, ``"1m30s"``, ``"500ms"`` -> seconds; None when unknown."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        return None
    text = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _UNITS[u] for n, u in parts)


def quantity(value: Any) -> float | None:
    """A Kubernetes quantity (``1Gi``, ``500m``, ``1e9``) as a number; None when unreadable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        return None
    match = _QUANTITY.match(value.strip())
    if not match:
        return None
    try:
        return float(match.group(1)) * _FACTORS[match.group(2)]
    except ValueError:
        return None


def integer(value: Any) -> int | None:
    """An int, or a string holding one; None otherwise (booleans are not numbers)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    return None


def pod_spec(manifest: Manifest) -> tuple[tuple[str, ...], dict[str, Any]] | None:
    """``(path, spec)`` of a workload's pod template spec; None for other kinds (or a workloadRef)."""
    if manifest.kind not in WORKLOADS:
        return None
    spec = manifest.get("spec", "template", "spec")
    return (("spec", "template", "spec"), spec) if isinstance(spec, dict) else None


def containers(manifest: Manifest) -> Iterator[tuple[tuple[str | int, ...], dict[str, Any]]]:
    """``(path, container)`` of every (non-init) container of a workload."""
    found = pod_spec(manifest)
    if found is None:
        return
    path, spec = found
    for index, container in enumerate(spec.get("containers") or []):
        if isinstance(container, dict):
            yield (*path, "containers", index), container


def replicas(manifest: Manifest) -> int:
    value = integer(manifest.get("spec", "replicas"))
    return 1 if value is None else value


def annotation(manifest: Manifest, name: str) -> str | None:
    """The value of ``canarypilot.io/<name>`` on the object, if set."""
    return manifest.annotations.get(ANNOTATION + name)


def ignored(manifest: Manifest, rule_id: str) -> bool:
    """True when ``canarypilot.io/preflight-ignore`` on the object lists ``rule_id``."""
    listed = annotation(manifest, "preflight-ignore") or ""
    return rule_id in {part.strip() for part in listed.split(",")}


def canary_peak_pods(manifest: Manifest) -> tuple[int, int]:
    """``(stable, canary)`` pods at the busiest moment of a rollout of this workload.

    Deployments surge by ``maxSurge`` (default 25%). A canary Rollout runs its
    steps: each ``setWeight`` scales the canary to ``ceil(replicas * weight)``
    unless an earlier ``setCanaryScale`` pinned it; the stable version keeps all
    its pods unless ``dynamicStableScale`` shrinks it to the remaining traffic.
    A weight that is not a number counts as 100 (the worst case).
    """
    total = replicas(manifest)
    if manifest.kind == "Deployment":
        surge = manifest.get("spec", "strategy", "rollingUpdate", "maxSurge")
        fixed = integer(surge)
        if isinstance(surge, str) and re.fullmatch(r"\d+%", surge):
            fixed = math.ceil(total * int(surge[:-1]) / 100)
        return total, math.ceil(total * 0.25) if fixed is None else fixed
    canary = manifest.get("spec", "strategy", "canary")
    if manifest.kind != "Rollout" or not isinstance(canary, dict):
        return total, 0
    dynamic = canary.get("dynamicStableScale") is True
    weight, peak = 0, (total, 0)
    pinned: int | None = None
    for step in canary.get("steps") or []:
        if not isinstance(step, dict):
            continue
        if "setWeight" in step:
            value = integer(step["setWeight"])
            weight = 100 if value is None else max(0, min(100, value))
        scale = step.get("setCanaryScale")
        if isinstance(scale, dict):
            if scale.get("matchTrafficWeight") is True:
                pinned = None
            elif integer(scale.get("replicas")) is not None:
                pinned = integer(scale.get("replicas"))
            elif integer(scale.get("weight")) is not None:
                pinned = math.ceil(total * (integer(scale.get("weight")) or 0) / 100)
        canary_pods = pinned if pinned is not None else math.ceil(total * weight / 100)
        stable_pods = math.ceil(total * (100 - weight) / 100) if dynamic else total
        if stable_pods + canary_pods > sum(peak):
            peak = (stable_pods, canary_pods)
    if not dynamic:
        # After promotion the old pods stay for scaleDownDelaySeconds next to a full new set.
        peak = max(peak, (total, total), key=sum)
    return peak
