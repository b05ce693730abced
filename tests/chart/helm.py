"""The helm CLI compiled from its Go module (``helm.sh/helm/v3`` at ``HELM_VERSION``), cached.

``build/`` is a wrapper module that requires helm and names its command with a
``tool`` line, so ``go.sum`` pins the whole graph. The binary, the Go module cache and
the build cache live under ``~/.cache/canarypilot/helm-<version>/``, the binary in a
folder named by a hash of go.mod and go.sum (tests/support/gobuild.py), so only the
first run compiles (docs/kubernetes.md has the times).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.gobuild import build_key, cache_dir, cached_build, go_build

HELM_VERSION = "v3.19.5"
BUILD_DIR = Path(__file__).resolve().parent / "build"
CACHE = cache_dir(f"helm-{HELM_VERSION}")
BUILD_TIMEOUT = 30 * 60


def helm_binary(go: str) -> Path:
    """The helm binary for this go.mod/go.sum, built under the cache's lock if missing."""

    def build(partial: dict[str, Path]) -> None:
        stamp = f"-X helm.sh/helm/v3/internal/version.version={HELM_VERSION}"
        go_build(
            go,
            "helm.sh/helm/v3/cmd/helm",
            partial["helm"],
            cwd=BUILD_DIR,
            cache=CACHE,
            ldflags=stamp,
            timeout=BUILD_TIMEOUT,
        )

    key = build_key(BUILD_DIR, ("go.mod", "go.sum"))
    cached_build(CACHE, key, ("helm",), build)
    return CACHE / "bin" / key / "helm"


def helm(binary: Path, *args: str, home: Path) -> subprocess.CompletedProcess[str]:
    """``helm ARGS`` with its config, cache and data kept under ``home`` (not the user's)."""
    env = {
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
        "PATH": "/usr/bin:/bin",
    }
    return subprocess.run(
        [str(binary), *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )
