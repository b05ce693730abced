"""The Helm chart ``deploy/helm/canarypilot``, generated from the objects `render argo` writes.

One source for both: the chart's Deployment, Service, ServiceAccount, PDB and gate
AnalysisTemplate are `render argo`'s own objects (``analyzer_objects``,
``gate_template``), rendered with marker values that become Helm expressions. What
the values switch on or off is found by rendering twice (with and without a token
Secret) and making what differs conditional. So a change to the renderer changes
the chart when it is regenerated (``canarypilot render chart``), and a test fails
while the committed chart and the generated one differ.

Only the ServiceMonitor, the NetworkPolicy and the Prometheus credentials from a
Secret are the chart's own (render argo writes none of them).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import yaml

from canarypilot._version import __version__
from canarypilot.policy import Settings
from canarypilot.render.argo import ANALYZER, GATE_TEMPLATE, ArgoOptions, analyzer_objects, gate_template
from canarypilot.render.operator import OPERATOR, OperatorOptions, operator_objects

__all__ = ["chart_files"]

# Marker values: valid where the renderer validates them, unlikely anywhere else.
_NS = "zzanalyzernszz"
_GATE_NS = "zzgatenszz"
_TOKEN = "zztokensecretzz"
_IMAGE = "zzimagezz"
_PROM = "http://zzprometheuszz"
_WATCH_NS = "zzwatchnszz"
_SECRET = "zzsecretnamezz"
_MARKERS = {
    _WATCH_NS: "{{ .Values.operator.watchNamespace }}",
    _PROM: "{{ .Values.prometheus.url }}",
    _NS: "{{ .Release.Namespace }}",
    _GATE_NS: "{{ .Values.gate.namespace | default .Release.Namespace }}",
    _TOKEN: "{{ .Values.token.existingSecret }}",
    _IMAGE: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}",
}
_HAS_TOKEN = ".Values.token.existingSecret"
_AUTH_SECRET = ".Values.prometheus.auth.existingSecret"
_WATCHING = ".Values.operator.watchNamespace"
_SECRETS = ".Values.operator.secretNames"


@dataclass(frozen=True, slots=True)
class Expr:
    """A Helm expression written as the value itself (unquoted)."""

    text: str


@dataclass(frozen=True, slots=True)
class Block:
    """A value written by Helm as YAML: ``toYaml`` of a values path."""

    path: str


@dataclass(frozen=True, slots=True)
class When:
    """A mapping key or list item present only when the Helm condition holds."""

    condition: str
    value: Any


def chart_files(settings: Settings, *, crd: str) -> dict[str, str]:
    """Every file of the chart, by path inside the chart directory; ``crd`` is the
    CanaryRelease CRD (`canarypilot operator crd`), which Helm installs from ``crds/``."""
    objects = _conditional(_objects(settings, token=False), _objects(settings, token=True), _HAS_TOKEN)
    files = {
        "Chart.yaml": _dump_plain(_chart_yaml()),
        "values.yaml": _values_yaml(objects),
    }
    for obj in objects:
        kind, name = obj["kind"], obj["metadata"]["name"]
        body = _emit(_templated(obj), 0)
        if kind == "AnalysisTemplate":
            body = ["{{- if .Values.gate.enabled }}", *body, "{{- end }}"]
        files[f"templates/{_file_name(kind, name)}"] = _HEADER + "\n".join(body) + "\n"
    files["templates/servicemonitor.yaml"] = _HEADER + "\n".join(_service_monitor()) + "\n"
    files["templates/networkpolicy.yaml"] = _HEADER + "\n".join(_network_policy()) + "\n"
    for file, obj in _operator_objects():
        body = ["{{- if .Values.operator.enabled }}", *_emit(obj, 0), "{{- end }}"]
        files[f"templates/operator-{file}.yaml"] = _HEADER + "\n".join(body) + "\n"
    files["crds/canaryrelease-crd.yaml"] = crd
    return files


def _operator_objects() -> list[tuple[str, dict[str, Any]]]:
    """`operator manifests`'s objects, its options made values: ``operator.watchNamespace``
    (a RoleBinding there instead of the ClusterRoleBinding) and ``operator.secretNames``."""
    plain = operator_objects(OperatorOptions(namespace=_NS, image=_IMAGE))
    full = operator_objects(
        OperatorOptions(namespace=_NS, image=_IMAGE, watch_namespace=_WATCH_NS, secret_names=(_SECRET,))
    )
    out: list[tuple[str, dict[str, Any]]] = []
    for without, with_ in zip(plain, full, strict=True):
        kind = without["kind"]
        if kind == "ClusterRoleBinding":
            obj = dict(without)
            obj["kind"] = Expr(f'{{{{ empty {_WATCHING} | ternary "ClusterRoleBinding" "RoleBinding" }}}}')
            obj["metadata"] = {**without["metadata"], "namespace": When(_WATCHING, _WATCH_NS)}
            file = "binding"
        elif kind == "ClusterRole":
            obj = _conditional(without, with_, _SECRETS)
            obj["rules"][-1].value["resourceNames"] = Block(_SECRETS)
            file = "clusterrole"
        else:
            obj = _conditional(without, with_, _WATCHING)
            file = {"RoleBinding": "lease-rolebinding", "Role": "lease-role"}.get(kind, kind.lower())
        if kind == "Deployment":
            spec = obj["spec"]
            spec["replicas"] = Expr("{{ .Values.operator.replicas }}")
            container = spec["template"]["spec"]["containers"][0]
            container["imagePullPolicy"] = Expr("{{ .Values.image.pullPolicy }}")
            container["resources"] = Block(".Values.operator.resources")
        out.append((file, obj))
    return out


_HEADER = "# Generated by `canarypilot render chart` from the objects `render argo` writes: do not edit.\n"


def _objects(settings: Settings, *, token: bool) -> list[dict[str, Any]]:
    options = ArgoOptions(
        service="chart",
        image="unused:1",
        namespace=_GATE_NS,
        analyzer_namespace=_NS,
        analyzer_image=_IMAGE,
        prometheus_url=_PROM,
        token_secret=_TOKEN if token else None,
    )
    return [*analyzer_objects(options, settings), gate_template(options, settings)]


def _conditional(without: Any, with_: Any, condition: str) -> Any:
    """``with_``, where what ``without`` lacks is wrapped in ``When(condition)``."""
    if isinstance(without, dict) and isinstance(with_, dict):
        return {
            key: _conditional(without[key], value, condition) if key in without else When(condition, value)
            for key, value in with_.items()
        }
    if isinstance(without, list) and isinstance(with_, list) and len(with_) >= len(without):
        if len(with_) == len(without):
            return [_conditional(a, b, condition) for a, b in zip(without, with_, strict=True)]
        if with_[: len(without)] == without:
            return [*without, *(When(condition, item) for item in with_[len(without) :])]
    if without != with_:
        raise ValueError(f"the token changes {without!r} into {with_!r}: cannot make that conditional")
    return with_


def _templated(obj: dict[str, Any]) -> dict[str, Any]:
    """Wire the values the renderer has no options for into the analyzer's objects."""
    if obj["kind"] == "Deployment":
        spec = obj["spec"]
        spec["replicas"] = Expr("{{ .Values.replicas }}")
        container = spec["template"]["spec"]["containers"][0]
        container["imagePullPolicy"] = Expr("{{ .Values.image.pullPolicy }}")
        container["resources"] = Block(".Values.resources")
        container["env"] = When(_AUTH_SECRET, [*_auth_env("bearer"), *_auth_env("basic")])
    if obj["kind"] == "PodDisruptionBudget":
        obj["spec"]["minAvailable"] = Expr("{{ .Values.podDisruptionBudget.minAvailable }}")
    if obj["kind"] == "AnalysisTemplate":  # `render argo --cluster-gate`: the same gate, cluster-wide
        obj["kind"] = Expr(
            '{{ .Values.gate.clusterScope | ternary "ClusterAnalysisTemplate" "AnalysisTemplate" }}'
        )
        obj["metadata"]["namespace"] = When("not .Values.gate.clusterScope", obj["metadata"]["namespace"])
    return obj


#: Prometheus credentials from a Secret: the settings' environment variables, by auth type.
_AUTH_FIELDS = {
    "bearer": (("BEARER_TOKEN", "token"),),
    "basic": (("BASIC_AUTH_USER", "username"), ("BASIC_AUTH_PASSWORD", "password")),
}


def _auth_env(kind: str) -> list[When]:
    secret = {"name": Expr(f"{{{{ {_AUTH_SECRET} }}}}")}
    return [
        When(
            f'eq .Values.prometheus.auth.type "{kind}"',
            {"name": f"CANARYPILOT_PROMETHEUS__{env}", "valueFrom": {"secretKeyRef": {**secret, "key": key}}},
        )
        for env, key in _AUTH_FIELDS[kind]
    ]


def _service_monitor() -> list[str]:
    labels = {"app.kubernetes.io/name": ANALYZER, "app.kubernetes.io/part-of": "canarypilot"}
    doc = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": ANALYZER, "namespace": _NS, "labels": labels},
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/name": ANALYZER}},
            "endpoints": [
                {
                    "port": "http",
                    "path": "/metrics",
                    "interval": Expr("{{ .Values.serviceMonitor.interval }}"),
                }
            ],
        },
    }
    return ["{{- if .Values.serviceMonitor.enabled }}", *_emit(doc, 0), "{{- end }}"]


def _network_policy() -> list[str]:
    # Only the gate's callers (Argo's controller), Prometheus and the kubelet's probes reach 8080.
    doc = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": ANALYZER, "namespace": _NS, "labels": {"app.kubernetes.io/name": ANALYZER}},
        "spec": {
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": ANALYZER}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {"from": Block(".Values.networkPolicy.from"), "ports": [{"port": "http", "protocol": "TCP"}]}
            ],
        },
    }
    return ["{{- if .Values.networkPolicy.enabled }}", *_emit(doc, 0), "{{- end }}"]


def _chart_yaml() -> dict[str, Any]:
    return {
        "apiVersion": "v2",
        "name": "canarypilot",
        "description": "canarypilot's analysis service and the gate AnalysisTemplate that calls it",
        "type": "application",
        "version": __version__,
        "appVersion": __version__,
        "home": "https://github.com/canarypilot/canarypilot",
        "sources": ["https://github.com/canarypilot/canarypilot"],
    }


def _values_yaml(objects: list[dict[str, Any]]) -> str:
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    pdb = next(o for o in objects if o["kind"] == "PodDisruptionBudget")
    operator = next(o for o in operator_objects(OperatorOptions()) if o["kind"] == "Deployment")
    values = {
        "image": {"repository": "canarypilot", "tag": "", "pullPolicy": "IfNotPresent"},
        "replicas": deployment["spec"]["replicas"],
        "prometheus": {"url": _default("prometheus_url"), "auth": {"existingSecret": "", "type": "bearer"}},
        "token": {"existingSecret": ""},
        "resources": container["resources"],
        "podDisruptionBudget": {"minAvailable": pdb["spec"]["minAvailable"]},
        "serviceMonitor": {"enabled": False, "interval": "30s"},
        "networkPolicy": {"enabled": False, "from": [{"namespaceSelector": {}}]},
        "gate": {"enabled": False, "namespace": "", "clusterScope": False},
        "operator": {
            "enabled": False,
            "replicas": operator["spec"]["replicas"],
            "watchNamespace": "",
            "secretNames": [],
            "resources": operator["spec"]["template"]["spec"]["containers"][0]["resources"],
        },
    }
    notes = {
        "image": "the analysis service's image; tag defaults to the chart's appVersion",
        "prometheus": "auth.existingSecret: a Secret with `token` (bearer) or `username`, `password` (basic)",
        "token": "existingSecret: a Secret (key `token`) the service requires on /analyze; the gate sends it",
        "gate": f"enabled: the {GATE_TEMPLATE} AnalysisTemplate in `namespace` (default: the release's), "
        "or a ClusterAnalysisTemplate with clusterScope (render argo --cluster-gate)",
        "operator": f"enabled: the {OPERATOR} (docs/operator.md) with its least RBAC; watchNamespace: "
        "reconcile only that namespace; secretNames: the authSecretRef Secrets it may read (no others)",
    }
    lines = [_HEADER.rstrip("\n")]
    for key, value in values.items():
        if key in notes:
            lines.append(f"# {notes[key]}")
        lines += _dump_plain({key: value}).rstrip("\n").splitlines()
    return "\n".join(lines) + "\n"


def _default(field: str) -> Any:
    return next(f.default for f in fields(ArgoOptions) if f.name == field)


def _file_name(kind: str, name: str) -> str:
    short = {"PodDisruptionBudget": "pdb", "AnalysisTemplate": "analysistemplate"}
    return (
        f"{short.get(kind, kind.lower())}.yaml"
        if name in (ANALYZER, GATE_TEMPLATE)
        else f"{kind.lower()}-{name}.yaml"
    )


def _dump_plain(value: dict[str, Any]) -> str:
    return yaml.safe_dump(value, sort_keys=False, default_flow_style=False)


# -- a small YAML writer that knows Helm's actions --------------------------------------

_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9/._-]*")


def _scalar(value: Any) -> str:
    if isinstance(value, Expr):
        return value.text
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value)
    if _PLAIN.fullmatch(text) and yaml.safe_load(text) == text and not any(m in text for m in _MARKERS):
        return text
    # Argo's own {{args.x}} must reach the cluster as written: Helm would read it as an action.
    escaped = text.replace("{{", "{{`{{`}}")
    for marker, expression in _MARKERS.items():
        escaped = escaped.replace(marker, expression)
    return json.dumps(escaped)


def _emit(value: dict[str, Any], indent: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    for key, item in value.items():
        lines += _entry(f"{pad}{key}:", item, indent, lambda inner: _emit_value(inner, indent + 2))
    return lines


def _entry(head: str, item: Any, indent: int, nested: Callable[[Any], list[str]]) -> list[str]:
    if isinstance(item, When):
        return [f"{{{{- if {item.condition} }}}}", *_entry(head, item.value, indent, nested), "{{- end }}"]
    if isinstance(item, Block):
        return [head, f"{' ' * (indent + 2)}{{{{- toYaml {item.path} | nindent {indent + 2} }}}}"]
    if isinstance(item, dict | list) and item:
        return [head, *nested(item)]
    if isinstance(item, dict | list):
        return [f"{head} {'{}' if isinstance(item, dict) else '[]'}"]
    return [f"{head} {_scalar(item)}"]


def _emit_value(value: Any, indent: int) -> list[str]:
    if isinstance(value, dict):
        return _emit(value, indent)
    lines: list[str] = []
    for item in value:
        lines += _list_item(item, indent)
    return lines


def _list_item(item: Any, indent: int) -> list[str]:
    pad = " " * indent
    if isinstance(item, When):
        return [f"{{{{- if {item.condition} }}}}", *_list_item(item.value, indent), "{{- end }}"]
    if isinstance(item, dict) and item:
        body = _emit(item, indent + 2)
        return [f"{pad}- {body[0].lstrip()}", *body[1:]]
    if isinstance(item, list | dict):
        raise ValueError("nested empty or list items are not used by the chart")
    return [f"{pad}- {_scalar(item)}"]
