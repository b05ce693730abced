"""Argo Rollouts' CRDs as each release ships them: ``manifests/crds/`` of its Go module.

Downloaded through the Go module proxy into the module cache the Argo builds use
(``~/.cache/canarypilot/argo-<version>/mod``), so a machine that built the
controller or the contract test already has them and nothing is read from outside
the clone.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.gobuild import cache_dir, module_dir

ARGO_MODULE = "github.com/argoproj/argo-rollouts"


def argo_crds(go: str, version: str) -> Path:
    """The folder holding the CRDs of Argo Rollouts ``version`` (e.g. ``v1.7.2``)."""
    return module_dir(go, cache_dir(f"argo-{version}"), f"{ARGO_MODULE}@{version}") / "manifests" / "crds"
