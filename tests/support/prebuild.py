"""Build, before the suite starts, everything its tests compile or fetch: ``make test``'s first step.

``python -m tests.support.prebuild`` runs the same builders the tests' fixtures call
(each cached under ``~/.cache/canarypilot/`` and locked, so a warm run passes through in
a second or two), one after another with the whole machine. Then no build competes with
a real-time test for the CPU: with the suite spread over workers, a cold Kubernetes
build beside the demo's rollouts would slow them in a way a user's run never sees.

A step that cannot run here (no ``go``, no ``buildah``) is reported and skipped; one
that fails is reported and the rest go on, and exit status stays 0: the tests that need
it then fail (or skip) with the same message, each where a reader looks for it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from tests.chart.helm import helm_binary
from tests.cluster.binaries import ensure_binaries
from tests.cluster.controllers import (
    ARGO_VERSIONS,
    argo_binary,
    argo_crd_files,
    gateway_api_crd,
    kwok_binary,
    kwok_stages,
)
from tests.contract.argo.test_argo_contract import contract_binary
from tests.support.gobuild import go_binary
from tests.support.gomodules import argo_crds, prometheus_testdata
from tests.support.image import ImageUnavailable, build_image
from tests.support.thanos import thanos_binary


def steps(go: str) -> list[tuple[str, Callable[[], object]]]:
    """What the suite builds or fetches, in the order a cold run should do it."""
    found: list[tuple[str, Callable[[], object]]] = [
        ("Go test data (Prometheus' PromQL tests, Argo and Gateway API CRDs)", lambda: _test_data(go)),
        ("kube-apiserver, controller-manager, scheduler, etcd", lambda: ensure_binaries(go)),
        ("kwok", lambda: (kwok_binary(go), kwok_stages(go))),
    ]
    found += [(f"Argo Rollouts {v} controller", lambda v=v: argo_binary(go, v)) for v in ARGO_VERSIONS]
    found += [
        ("Argo contract test (v1.7.2 analysis code)", lambda: contract_binary(go)),
        ("helm", lambda: helm_binary(go)),
        ("Thanos", thanos_binary),
    ]
    return found


def _test_data(go: str) -> None:
    prometheus_testdata()
    gateway_api_crd(go)
    for version in ARGO_VERSIONS:
        argo_crds(version)
        argo_crd_files(go, version)


def _run(name: str, step: Callable[[], object]) -> float:
    print(f"prebuild: {name} ...", flush=True)
    started = time.monotonic()
    try:
        step()
    except BaseException as exc:  # noqa: BLE001 - pytest.fail raises a BaseException; report, go on
        if isinstance(exc, KeyboardInterrupt):
            raise
        first = str(exc).strip().splitlines()[:3]
        print(f"prebuild: {name} FAILED ({type(exc).__name__}): {' / '.join(first)}", flush=True)
    return time.monotonic() - started


def main() -> int:
    started = time.monotonic()
    go = go_binary()
    if go is None:
        print("prebuild: go is not installed: the Go builds are skipped (their tests skip too)")
    else:
        for name, step in steps(go):
            seconds = _run(name, step)
            if seconds >= 1:
                print(f"prebuild: {name}: {seconds:.0f} s", flush=True)
    seconds = _run("the service's image (deploy/image/build.sh)", _image)
    print(f"prebuild: done in {time.monotonic() - started:.0f} s (image {seconds:.0f} s)", flush=True)
    return 0


def _image() -> None:
    try:
        build_image()
    except ImageUnavailable as exc:
        print(f"prebuild: the image is skipped: {exc}")


if __name__ == "__main__":
    sys.exit(main())
