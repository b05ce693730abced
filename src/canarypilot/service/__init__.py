"""The analysis service: Argo Rollouts' Web metric provider asks it for decisions.

``create_app(provider, settings)`` builds the ASGI app (no socket is opened until a
server runs it); ``canarypilot serve`` runs it under uvicorn. See docs/argo.md.
"""

from canarypilot.service.app import create_app, gate
from canarypilot.service.coalescing import Analyzer

__all__ = ["Analyzer", "create_app", "gate"]
