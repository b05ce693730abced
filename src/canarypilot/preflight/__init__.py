"""``canarypilot preflight``: lint Kubernetes and Argo Rollouts manifests for the canary pitfalls.

Rules (``CP101`` …) live in :mod:`canarypilot.preflight.rules`, each a small
function registered with a stable ID, severity, why and fix; see docs/preflight.md.

>>> # from canarypilot.preflight import check_paths, Options
>>> # findings = check_paths(["deploy/"], Options(db_max_connections=500))
"""

from canarypilot.preflight.check import check, check_paths, failed
from canarypilot.preflight.findings import RULES, Finding, Options, Rule, Severity
from canarypilot.preflight.loader import Manifest, load_paths, parse_text

__all__ = [
    "RULES",
    "Finding",
    "Manifest",
    "Options",
    "Rule",
    "Severity",
    "check",
    "check_paths",
    "failed",
    "load_paths",
    "parse_text",
]
