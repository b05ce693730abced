"""Other projects' files the tests read, fetched from their Go modules at pinned versions.

The tests check canarypilot against behaviour it did not define: Prometheus' own
PromQL test scripts and Argo Rollouts' CRD schemas. Neither is copied into the
repository; both come from the project's Go module through the Go module proxy
(``go mod download -json MODULE@VERSION``), into a module cache under
``~/.cache/canarypilot/gomod/`` that later runs reuse without a network call. So a
plain clone tests itself, with nothing beside it.

    >>> # prometheus_testdata() / "histograms.test"
    >>> # argo_crds("v1.7.2") / "rollout-crd.yaml"
"""

from __future__ import annotations

import fcntl
import json
import subprocess
from pathlib import Path

from tests.support.gobuild import cache_dir, go_binary, go_env

#: Prometheus 2.53.0, the release the article runs: Go modules number it v0.53.0.
PROMETHEUS = ("github.com/prometheus/prometheus", "v0.53.0")
ARGO_ROLLOUTS = "github.com/argoproj/argo-rollouts"
#: The Argo Rollouts releases whose CRDs the rendered manifests must satisfy.
ARGO_VERSIONS = ("v1.7.2", "v1.9.1")


class ModuleUnavailable(Exception):
    """The module could not be fetched: no ``go``, or the download failed (the message says)."""


def module_dir(module: str, version: str) -> Path:
    """The unpacked (read-only) source of ``module@version``, downloaded once."""
    cache = cache_dir("gomod")
    known = cache / "mod" / f"{_escaped(module)}@{version}"
    if (known / "go.mod").is_file():
        return known
    go = go_binary()
    if go is None:
        raise ModuleUnavailable(f"go is not installed: cannot fetch {module}@{version}")
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / "download.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # concurrent sessions download once
        result = subprocess.run(
            [go, "mod", "download", "-json", f"{module}@{version}"],
            cwd=cache,
            env=go_env(cache),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    try:
        info = json.loads(result.stdout)
    except ValueError:
        info = {}
    if result.returncode != 0 or "Dir" not in info:
        why = info.get("Error") or (result.stderr or result.stdout)[-2000:]
        raise ModuleUnavailable(f"`go mod download {module}@{version}` failed: {why}")
    return Path(info["Dir"])


def prometheus_testdata() -> Path:
    """Prometheus' PromQL test scripts (``promql/promqltest/testdata``)."""
    return module_dir(*PROMETHEUS) / "promql" / "promqltest" / "testdata"


def argo_crds(version: str) -> Path:
    """Argo Rollouts' CRDs (``manifests/crds``) at ``version``."""
    return module_dir(ARGO_ROLLOUTS, version) / "manifests" / "crds"


def _escaped(module: str) -> str:
    # The module cache spells an upper-case letter as "!" and the letter in lower case.
    return "".join(f"!{c.lower()}" if c.isupper() else c for c in module)
