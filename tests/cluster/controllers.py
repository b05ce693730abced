"""The rest of a control plane on loopback: kube-controller-manager, kube-scheduler, kwok's
fake nodes, and the Argo Rollouts controller, each compiled from its Go module.

* kube-controller-manager and kube-scheduler come from the same module graph as
  kube-apiserver (``binaries.py``); the controller manager runs only what a Rollout
  needs (ReplicaSets, their garbage, the namespaces' default ServiceAccounts).
* kwok (``sigs.k8s.io/kwok``, wrapper module ``kwok/``) plays the kubelet of fake
  nodes: a scheduled pod becomes Running and Ready with an IP, nothing runs. Its
  stages are the "fast" ones from its own module (``kustomize/stage``).
* the Argo Rollouts controller (``github.com/argoproj/argo-rollouts/cmd/rollouts-controller``,
  one wrapper module per version under ``argo/``) with the CRDs of the same release.

Every binary is cached under ``~/.cache/canarypilot/<name>-<version>/`` by a hash of
its wrapper's go.mod and go.sum (tests/support/gobuild.py).
"""

from __future__ import annotations

from pathlib import Path

from canarypilot.local.processes import LocalServer, answers_http, free_port
from tests.cluster.binaries import CACHE as KUBERNETES_CACHE
from tests.support.argo_crds import ARGO_MODULE, argo_crds
from tests.support.gobuild import build_key, cache_dir, cached_build, go_build, module_dir

HERE = Path(__file__).resolve().parent
KWOK_VERSION = "v0.8.0"
#: v1.7.2 is the article's; v1.9.2 the newest this machine's Go (1.26.8) builds: v1.9.3
#: asks for go 1.26.10 (docs/cluster-tests.md).
ARGO_VERSIONS = ("v1.7.2", "v1.9.2")
GATEWAY_API = "sigs.k8s.io/gateway-api@v1.2.1"
BUILD_TIMEOUT = 60 * 60


def _build(go: str, folder: Path, cache: Path, name: str, package: str, ldflags: str = "") -> Path:
    def build(partial: dict[str, Path]) -> None:
        go_build(go, package, partial[name], cwd=folder, cache=cache, ldflags=ldflags, timeout=BUILD_TIMEOUT)

    key = build_key(folder, ("go.mod", "go.sum"))
    cached_build(cache, key, (name,), build)
    return cache / "bin" / key / name


def kwok_binary(go: str) -> Path:
    return _build(go, HERE / "kwok", cache_dir(f"kwok-{KWOK_VERSION}"), "kwok", "sigs.k8s.io/kwok/cmd/kwok")


def argo_binary(go: str, version: str) -> Path:
    stamp = f"-X {ARGO_MODULE}/utils/version.version={version.lstrip('v')}"
    return _build(
        go,
        HERE / "argo" / version,
        cache_dir(f"argo-{version}"),
        "rollouts-controller",
        f"{ARGO_MODULE}/cmd/rollouts-controller",
        stamp,
    )


def kwok_stages(go: str) -> list[Path]:
    """kwok's own "fast" stages: nodes Ready at once, pods Running and Ready once scheduled."""
    kwok = module_dir(go, cache_dir(f"kwok-{KWOK_VERSION}"), f"sigs.k8s.io/kwok@{KWOK_VERSION}")
    root = kwok / "kustomize" / "stage"
    return [
        root / "node" / "fast" / "node-initialize.yaml",
        *(root / "pod" / "fast" / f"pod-{stage}.yaml" for stage in ("ready", "complete", "delete")),
    ]


def gateway_api_crd(go: str) -> Path:
    """The standard-channel HTTPRoute CRD, from the Gateway API Go module."""
    folder = module_dir(go, KUBERNETES_CACHE, GATEWAY_API) / "config" / "crd" / "standard"
    return folder / "gateway.networking.k8s.io_httproutes.yaml"


def argo_crd_files(go: str, version: str) -> list[Path]:
    """Every CRD of that Argo release, from its module's manifests/crds/."""
    return sorted(argo_crds(go, version).glob("*-crd.yaml"))


class _HealthzServer(LocalServer):
    """A component that serves /healthz on a loopback port of its own."""

    binary: Path
    workdir: Path
    health_url: str = ""
    verify: bool = False

    def _ready(self) -> bool:
        return answers_http(self.health_url, verify=self.verify)


class LocalControllerManager(_HealthzServer):
    name = "kube-controller-manager"
    #: What a Rollout's pods need; no node lifecycle (kwok's nodes send no heartbeats).
    CONTROLLERS = "replicaset,deployment,serviceaccount,garbagecollector,namespace,disruption"

    def __init__(self, binary: Path, workdir: Path, kubeconfig: Path) -> None:
        self.binary, self.workdir, self.kubeconfig = binary, workdir, kubeconfig
        self.port = free_port()
        self.health_url = f"https://127.0.0.1:{self.port}/healthz"

    def start(self, *, timeout: float = 60.0) -> LocalControllerManager:
        argv = [
            str(self.binary),
            f"--kubeconfig={self.kubeconfig}",
            f"--controllers={self.CONTROLLERS}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={self.port}",
            f"--cert-dir={self.workdir / 'kcm-certs'}",
            "--concurrent-replicaset-syncs=5",
            "--v=1",
        ]
        self._launch(argv, log_path=self.workdir / "kube-controller-manager.log", timeout=timeout)
        return self


class LocalScheduler(_HealthzServer):
    name = "kube-scheduler"

    def __init__(self, binary: Path, workdir: Path, kubeconfig: Path) -> None:
        self.binary, self.workdir, self.kubeconfig = binary, workdir, kubeconfig
        self.port = free_port()
        self.health_url = f"https://127.0.0.1:{self.port}/healthz"

    def start(self, *, timeout: float = 60.0) -> LocalScheduler:
        argv = [
            str(self.binary),
            f"--kubeconfig={self.kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={self.port}",
            f"--cert-dir={self.workdir / 'scheduler-certs'}",
            "--v=1",
        ]
        self._launch(argv, log_path=self.workdir / "kube-scheduler.log", timeout=timeout)
        return self


class LocalKwok(_HealthzServer):
    name = "kwok"

    def __init__(self, binary: Path, workdir: Path, kubeconfig: Path, stages: list[Path]) -> None:
        self.binary, self.workdir, self.kubeconfig, self.stages = binary, workdir, kubeconfig, stages
        self.port = free_port()
        self.health_url = f"http://127.0.0.1:{self.port}/healthz"

    def start(self, *, timeout: float = 60.0) -> LocalKwok:
        argv = [
            str(self.binary),
            f"--kubeconfig={self.kubeconfig}",
            *(f"--config={stage}" for stage in self.stages),
            "--manage-all-nodes=true",
            "--cidr=10.244.0.1/16",
            "--node-ip=127.0.0.1",
            f"--server-address=127.0.0.1:{self.port}",
        ]
        self._launch(argv, log_path=self.workdir / "kwok.log", timeout=timeout)
        return self


class LocalArgoRollouts(_HealthzServer):
    """The Argo Rollouts controller. Its metrics and healthz servers bind 0.0.0.0 (a constant
    in its code, no flag): the ports are free ones, and only /healthz is read, on 127.0.0.1."""

    name = "argo-rollouts"

    def __init__(self, binary: Path, workdir: Path, kubeconfig: Path, version: str) -> None:
        self.binary, self.workdir, self.kubeconfig, self.version = binary, workdir, kubeconfig, version
        self.port, self.metrics_port = free_port(), free_port()
        self.health_url = f"http://127.0.0.1:{self.port}/healthz"

    def start(self, *, timeout: float = 60.0) -> LocalArgoRollouts:
        argv = [
            str(self.binary),
            f"--kubeconfig={self.kubeconfig}",
            "--leader-elect=false",
            f"--healthzPort={self.port}",
            f"--metricsport={self.metrics_port}",
            "--loglevel=info",
            "--logformat=text",
            "--rollout-resync=10",
        ]
        self._launch(argv, log_path=self.workdir / f"argo-rollouts-{self.version}.log", timeout=timeout)
        return self
