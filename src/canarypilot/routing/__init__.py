"""Traffic routers: HAProxy, nginx, Kubernetes ingress and Gateway API, Argo, and fakes."""

from canarypilot.routing.base import Router
from canarypilot.routing.recording import RecordingRouter

__all__ = ["RecordingRouter", "Router"]
