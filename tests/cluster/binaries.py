"""kube-apiserver, kube-controller-manager, kube-scheduler and etcd compiled from their Go
modules, once per version and go.sum.

No release tarball can be fetched here, only Go modules, so the wrapper module in
``build/`` requires ``k8s.io/kubernetes`` at ``KUBERNETES_VERSION`` with each staging
module pinned to the matching ``v0.Y.Z`` release, and a two-line ``etcd`` main that
calls etcd's own entry point. Binaries, module cache and build cache live under
``~/.cache/canarypilot/k8s-<version>/``; the binaries sit in a folder named by a hash
of the wrapper's go.mod, go.sum and etcd main, so a repeat run skips the build
(docs/cluster-tests.md has the measured times and sizes).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.gobuild import BuildFailed, build_key, cache_dir, cached_build, go_binary, go_build

__all__ = ["BUILD_DIR", "CACHE", "Binaries", "BuildFailed", "ensure_binaries", "go_binary"]

BUILD_DIR = Path(__file__).resolve().parent / "build"
KUBERNETES_VERSION = "v1.36.3"
ETCD_VERSION = "v3.6.8"  # what k8s.io/kubernetes v1.36.3 requires of go.etcd.io/etcd/server/v3
CACHE = cache_dir(f"k8s-{KUBERNETES_VERSION}")
BUILD_TIMEOUT = 60 * 60  # a cold build downloads ~700 MB of modules and compiles ~3000 packages
SOURCES = ("go.mod", "go.sum", "etcd/main.go")


NAMES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd")


@dataclass(frozen=True)
class Binaries:
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    etcd: Path
    built_seconds: float | None  # None when reused from the cache


def _version_ldflags() -> str:
    """What Kubernetes' release build stamps, so /version says v1.36.3, not v0.0.0-master."""
    major, minor = KUBERNETES_VERSION.lstrip("v").split(".")[:2]
    stamps = {"gitVersion": KUBERNETES_VERSION, "gitMajor": major, "gitMinor": minor, "gitTreeState": "clean"}
    return " ".join(
        f"-X k8s.io/{pkg}.{key}={value}"
        for pkg in ("component-base/version", "client-go/pkg/version")
        for key, value in stamps.items()
    )


def _go_build(go: str, package: str, output: Path) -> None:
    go_build(
        go, package, output, cwd=BUILD_DIR, cache=CACHE, ldflags=_version_ldflags(), timeout=BUILD_TIMEOUT
    )


def ensure_binaries(go: str) -> Binaries:
    """The four binaries for this go.mod/go.sum, built under a file lock if missing.

    The three Kubernetes commands share almost every package, so after the first the
    others cost little more than their link (docs/cluster-tests.md has the times).
    """
    started = time.monotonic()

    def build(partial: dict[str, Path]) -> None:
        for name in NAMES[:3]:
            _go_build(go, f"k8s.io/kubernetes/cmd/{name}", partial[name])
        _go_build(go, "./etcd", partial["etcd"])

    key = build_key(BUILD_DIR, SOURCES)
    built = cached_build(CACHE, key, NAMES, build)
    folder = CACHE / "bin" / key
    return Binaries(
        *(folder / name for name in NAMES), built_seconds=time.monotonic() - started if built else None
    )
