"""Kubernetes objects both router suites start from: the fake API server's and the real one's."""

from __future__ import annotations

from typing import Any


def stable_ingress() -> dict[str, Any]:
    """The stable Ingress a user already has: TLS, a class, an nginx annotation to be copied
    to the canary and a kubectl one not to be."""
    backend = {"service": {"name": "web-stable", "port": {"number": 80}}}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": "web",
            "labels": {"app": "web"},
            "annotations": {
                "nginx.ingress.kubernetes.io/proxy-read-timeout": "30",
                "kubectl.kubernetes.io/last-applied-configuration": "{}",
            },
        },
        "spec": {
            "ingressClassName": "nginx",
            "tls": [{"hosts": ["web.example.com"], "secretName": "web-tls"}],
            "rules": [
                {
                    "host": "web.example.com",
                    "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]},
                }
            ],
        },
    }
