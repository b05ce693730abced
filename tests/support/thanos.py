"""Thanos for the tests: built from its Go module at a pinned version, and run on loopback.

No Debian package ships Thanos. ``thanos_binary`` builds ``cmd/thanos`` from the
module proxy once, with every cache under ``~/.cache/canarypilot/thanos-<version>/``
(the binary in its ``bin/``), like the other Go builds of the tests
(``gobuild.py``). A cold build downloads ~2 GB of modules and compiles for a
long while on two cores; later runs reuse the binary.

The topology is Thanos' HA pair: two Prometheus replicas with the same data and
a ``replica`` external label, a sidecar beside each (the StoreAPI over the
replica's TSDB), and a querier over both sidecars that deduplicates on
``replica`` and answers the Prometheus HTTP API.
"""

from __future__ import annotations

import fcntl
import json
import subprocess
from pathlib import Path
from typing import Self

import httpx

from canarypilot.local.processes import LocalServer, answers_http, free_port
from canarypilot.local.prometheus import LocalPrometheus
from tests.support.gobuild import BuildFailed, cache_dir, go_binary, go_env

VERSION = "v0.36.1"
MODULE = "github.com/thanos-io/thanos"


def thanos_binary(*, timeout: float = 5400.0) -> Path | None:
    """The cached ``thanos`` binary, built if missing; ``None`` without Go."""
    cache = cache_dir(f"thanos-{VERSION}")
    binary = cache / "bin" / "thanos"
    if binary.exists():
        return binary
    go = go_binary()
    if go is None:
        return None
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / "build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # concurrent sessions build once
        if binary.exists():
            return binary
        env = go_env(cache)
        env["GOFLAGS"] = "-modcacherw -buildvcs=false"
        found = subprocess.run(
            [go, "mod", "download", "-json", f"{MODULE}@{VERSION}"],
            env=env, capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
        if found.returncode != 0:
            raise BuildFailed(f"go mod download {MODULE}@{VERSION} failed:\n{found.stderr[-4000:]}")
        source = Path(json.loads(found.stdout)["Dir"])
        binary.parent.mkdir(parents=True, exist_ok=True)
        partial = binary.with_name("thanos.partial")
        built = subprocess.run(
            [go, "build", "-o", str(partial), "./cmd/thanos"],
            cwd=source, env=env, capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
        if built.returncode != 0:
            raise BuildFailed(f"go build ./cmd/thanos ({VERSION}) failed:\n{built.stderr[-4000:]}")
        partial.rename(binary)
    return binary


class Replica(LocalPrometheus):
    """A Prometheus of an HA pair: the same data, its own ``replica`` external label."""

    def __init__(self, workdir: Path, *, openmetrics: str, replica: str, tenant: str | None = None) -> None:
        super().__init__(workdir, openmetrics=openmetrics)
        self.replica = replica
        self.tenant = tenant

    def config(self) -> dict[str, object]:
        config = super().config()
        labels = {"replica": self.replica, **({"tenant_id": self.tenant} if self.tenant else {})}
        config["global"] = {**config["global"], "external_labels": labels}  # type: ignore[dict-item]
        return config


class Sidecar(LocalServer):
    """``thanos sidecar`` beside one replica: its StoreAPI on a gRPC port."""

    name = "thanos-sidecar"

    def __init__(self, binary: Path, replica: Replica) -> None:
        self.binary = binary
        self.replica = replica
        self.grpc = free_port()
        self.http = free_port()

    def start(self, *, timeout: float = 60.0) -> Self:
        argv = [
            str(self.binary), "sidecar",
            f"--prometheus.url={self.replica.url}",
            f"--tsdb.path={self.replica.workdir / 'data'}",
            f"--grpc-address=127.0.0.1:{self.grpc}",
            f"--http-address=127.0.0.1:{self.http}",
            "--log.level=warn",
        ]  # fmt: skip
        self._launch(argv, log_path=self.replica.workdir / "sidecar.log", timeout=timeout)
        return self

    def _ready(self) -> bool:
        return answers_http(f"http://127.0.0.1:{self.http}/-/ready", timeout=1.0)


class Querier(LocalServer):
    """``thanos query`` over the sidecars, deduplicating on ``replica``."""

    name = "thanos-query"

    def __init__(
        self, binary: Path, workdir: Path, sidecars: list[Sidecar], *, extra: tuple[str, ...] = ()
    ) -> None:
        self.binary = binary
        self.workdir = workdir
        self.sidecars = sidecars
        self.extra = extra
        self.http = free_port()
        self.grpc = free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http}"

    def start(self, *, timeout: float = 60.0) -> Self:
        self.workdir.mkdir(parents=True, exist_ok=True)
        argv = [
            str(self.binary), "query",
            f"--http-address=127.0.0.1:{self.http}",
            f"--grpc-address=127.0.0.1:{self.grpc}",
            "--query.replica-label=replica",
            "--log.level=warn",
            *(f"--endpoint=127.0.0.1:{s.grpc}" for s in self.sidecars),
            *self.extra,
        ]  # fmt: skip
        self._launch(argv, log_path=self.workdir / "query.log", timeout=timeout)
        return self

    def _ready(self) -> bool:
        """Ready once every sidecar is among its stores (it finds them a few seconds in)."""
        if not answers_http(f"{self.url}/-/ready", timeout=1.0):
            return False
        try:
            stores = httpx.get(f"{self.url}/api/v1/stores", timeout=1.0).json()["data"]
        except (httpx.HTTPError, ValueError, KeyError):
            return False
        healthy = [s for s in stores.get("sidecar") or [] if s.get("lastError") is None]
        return len(healthy) == len(self.sidecars)
