"""The operator's own objects: its ServiceAccount, the RBAC it needs and nothing more, and its
Deployment (`canarypilot operator manifests`, the Helm chart's ``operator.enabled``).

The rules are read off the calls the operator makes (docs/operator.md, "RBAC"):

* CanaryReleases: ``list`` (each pass), ``get``, ``patch`` (its finalizer, in the metadata:
  RBAC cannot narrow a patch further); their ``status`` subresource: ``update``. The
  operator never edits the spec a person declared.
* Deployments: ``get``, ``create`` (the canary), ``patch`` (pause, unpause, scale the canary).
* Services: ``get``, ``create`` (the canary Service). Ingresses: ``get``, ``create``, ``patch``
  (the canary Ingress); HTTPRoutes: ``get``, ``update`` (the rule's weights).
* Events: ``create``. Secrets: ``get``, and only those named (``resourceNames``): a release's
  ``authSecretRef``. Without names there is no Secret access at all.
* Leases: ``create`` and, for its own Lease only, ``get`` and ``update``, in its namespace.

Nothing is deleted, nothing is listed but CanaryReleases, no Pod is touched. Watching one
namespace binds the same ClusterRole with a RoleBinding there, so nothing elsewhere is
reachable.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from canarypilot._exceptions import ConfigError
from canarypilot._version import IMAGE
from canarypilot.render.argo import dns_label

#: The CanaryRelease resource's names, read by the CRD, the operator and its RBAC.
GROUP = "canarypilot.io"
VERSION = "v1alpha1"
KIND = "CanaryRelease"
PLURAL = "canaryreleases"
API_VERSION = f"{GROUP}/{VERSION}"

OPERATOR = "canarypilot-operator"
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")
LEASE = "canarypilot-operator"


@dataclass(frozen=True, slots=True)
class OperatorOptions:
    """What `canarypilot operator manifests` writes; see its --help for each field."""

    namespace: str = "canarypilot"
    image: str = IMAGE
    #: Reconcile only this namespace (a RoleBinding there), or every namespace (None).
    watch_namespace: str | None = None
    #: The Secrets releases name in ``authSecretRef``; the only ones the operator may read.
    secret_names: Sequence[str] = field(default=())
    replicas: int = 2

    def __post_init__(self) -> None:
        dns_label(self.namespace, "namespace")
        if self.watch_namespace is not None:
            dns_label(self.watch_namespace, "watch namespace")
        for name in self.secret_names:
            if len(name) > 253 or not _SUBDOMAIN.fullmatch(name):
                raise ConfigError(
                    f"invalid secret name {name!r}: Kubernetes wants lower-case letters, digits, '-' and '.'"
                )
        if not self.image.strip() or any(c.isspace() for c in self.image):
            raise ConfigError(f"invalid image {self.image!r}")
        if not 1 <= self.replicas <= 10:
            raise ConfigError(f"replicas must be 1..10, not {self.replicas}")


def labels() -> dict[str, str]:
    return {"app.kubernetes.io/name": OPERATOR, "app.kubernetes.io/part-of": "canarypilot"}


def _rule(group: str, resources: list[str], verbs: list[str], names: Sequence[str] = ()) -> dict[str, Any]:
    rule: dict[str, Any] = {"apiGroups": [group], "resources": resources, "verbs": verbs}
    if names:
        rule["resourceNames"] = list(names)
    return rule


def cluster_rules(secret_names: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The ClusterRole's rules: what reconciling a release touches in its namespace."""
    rules = [
        _rule(GROUP, [PLURAL], ["get", "list", "patch"]),
        _rule(GROUP, [f"{PLURAL}/status"], ["update"]),
        _rule("apps", ["deployments"], ["get", "create", "patch"]),
        _rule("", ["services"], ["get", "create"]),
        _rule("networking.k8s.io", ["ingresses"], ["get", "create", "patch"]),
        _rule("gateway.networking.k8s.io", ["httproutes"], ["get", "update"]),
        _rule("", ["events"], ["create"]),
    ]
    if secret_names:
        rules.append(_rule("", ["secrets"], ["get"], sorted(set(secret_names))))
    return rules


def lease_rules() -> list[dict[str, Any]]:
    """The Role's rules in the operator's namespace: its leader-election Lease."""
    return [
        _rule("coordination.k8s.io", ["leases"], ["create"]),
        _rule("coordination.k8s.io", ["leases"], ["get", "update"], [LEASE]),
    ]


def operator_objects(options: OperatorOptions) -> list[dict[str, Any]]:
    """ServiceAccount, ClusterRole and its binding, the Lease Role and its binding, Deployment."""
    ns = options.namespace
    meta = {"name": OPERATOR, "namespace": ns, "labels": labels()}
    subject = [{"kind": "ServiceAccount", "name": OPERATOR, "namespace": ns}]
    cluster_role = {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": OPERATOR}
    if options.watch_namespace is None:
        binding: dict[str, Any] = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": OPERATOR, "labels": labels()},
        }
    else:
        binding = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": OPERATOR, "namespace": options.watch_namespace, "labels": labels()},
        }
    binding.update(subjects=subject, roleRef=cluster_role)
    args = ["operator", "run", "--lease-namespace", ns]
    if options.watch_namespace is not None:
        args += ["--namespace", options.watch_namespace]
    container = {
        "name": "operator",
        "image": options.image,
        "args": args,
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    selector = {"app.kubernetes.io/name": OPERATOR}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": OPERATOR, "labels": labels()},
            "rules": cluster_rules(options.secret_names),
        },
        binding,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": meta,
            "rules": lease_rules(),
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": meta,
            "subjects": subject,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": OPERATOR},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta,
            "spec": {
                "replicas": options.replicas,
                "selector": {"matchLabels": selector},
                "template": {
                    "metadata": {"labels": selector},
                    "spec": {
                        "serviceAccountName": OPERATOR,
                        "terminationGracePeriodSeconds": 30,
                        "securityContext": {
                            "runAsNonRoot": True,
                            "runAsUser": 10001,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "containers": [container],
                    },
                },
            },
        },
    ]
