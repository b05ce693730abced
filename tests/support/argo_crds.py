"""Argo Rollouts' CRDs as each release ships them: ``manifests/crds/`` of its Go module.

Downloaded through the Go module proxy into the module cache the Argo builds use
(``~/.cache/canarypilot/argo-<version>/mod``), so a machine that built the
controller or the contract test already has them and nothing is read from outside
the clone.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.support.gobuild import BuildFailed, cache_dir, go_env

ARGO_MODULE = "github.com/argoproj/argo-rollouts"
CRD_FILES = {
    "Rollout": "rollout-crd.yaml",
    "AnalysisTemplate": "analysis-template-crd.yaml",
    "ClusterAnalysisTemplate": "cluster-analysis-template-crd.yaml",
    "AnalysisRun": "analysis-run-crd.yaml",
    "Experiment": "experiment-crd.yaml",
}


def argo_crds(go: str, version: str) -> Path:
    """The folder holding the CRDs of Argo Rollouts ``version`` (e.g. ``v1.7.2``)."""
    cache = cache_dir(f"argo-{version}")
    cache.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [go, "mod", "download", "-json", f"{ARGO_MODULE}@{version}"],
        cwd=cache,
        env=go_env(cache),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        raise BuildFailed(f"`go mod download {ARGO_MODULE}@{version}` failed:\n{result.stderr[-2000:]}")
    return Path(json.loads(result.stdout)["Dir"]) / "manifests" / "crds"
