"""The analysis service's container image, built by ``deploy/image/build.sh`` and run with podman.

The image tests and the cluster's end-to-end tests run ``canarypilot serve`` from the
image as a cluster would: as uid 10001 with a read-only root filesystem. podman runs it
with ``runc`` (crun refuses this kind of machine's hybrid cgroups), with ulimits inside
the hard limits a CI container allows, and with the host's network so the service
listens on 127.0.0.1 like every other server the tests start.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from canarypilot.local.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = ROOT / "deploy" / "image" / "build.sh"
BUILD_TIMEOUT = 15 * 60  # a cold build: debootstrap (~80 s) and the wheels from PyPI (~60 s)
#: How the tests (and docs/kubernetes.md) run the image: what a restricted pod gets.
RUN_FLAGS = (
    "--runtime",
    "runc",
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
    "--read-only",
    "--user",
    "10001",
    "--network",
    "host",
)


class ImageUnavailable(Exception):
    """buildah or podman is missing: the image cannot be built or run here."""


@dataclass(frozen=True)
class BuiltImage:
    name: str
    build_seconds: float

    def inspect(self) -> dict[str, object]:
        out = podman("image", "inspect", self.name)
        found = json.loads(out)
        assert isinstance(found, list) and isinstance(found[0], dict)
        return found[0]


def podman(*args: str, timeout: float = 60.0, check: bool = True) -> str:
    """``podman ARGS``; its stdout. A failure raises with podman's stderr."""
    result = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"`podman {' '.join(args)}` failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout


def run_image(image: str, *argv: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """``podman run --rm`` the image's entrypoint with ``argv``, as a restricted pod would."""
    return subprocess.run(
        ["podman", "run", "--rm", *RUN_FLAGS, image, *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def build_image() -> BuiltImage:
    """Build (or rebuild from buildah's layer cache) the image; ImageUnavailable without the tools."""
    missing = [tool for tool in ("buildah", "podman", "debootstrap") if shutil.which(tool) is None]
    if missing:
        raise ImageUnavailable(
            f"{', '.join(missing)} not installed (apt-get install buildah podman runc debootstrap)"
        )
    started = time.monotonic()
    result = subprocess.run(
        [str(BUILD_SCRIPT)], cwd=ROOT, capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"{BUILD_SCRIPT} failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return BuiltImage(result.stdout.strip().splitlines()[-1], time.monotonic() - started)


@dataclass(frozen=True)
class Container:
    name: str
    url: str

    def logs(self) -> str:
        return podman("logs", self.name, check=False)

    def exec(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["podman", "exec", self.name, *argv], capture_output=True, text=True, timeout=30, check=False
        )


@contextmanager
def serve_container(
    image: str, args: Sequence[str], *, port: int | None = None, env: Mapping[str, str] | None = None
) -> Iterator[Container]:
    """``canarypilot serve ARGS`` from ``image`` on 127.0.0.1 with ``env`` set; removed on exit
    (SIGTERM, then kill)."""
    port = port or free_port()
    name = f"canarypilot-test-{secrets.token_hex(4)}"
    serve = ["serve", "--host", "127.0.0.1", "--port", str(port), *args]
    environment = [f"--env={key}={value}" for key, value in (env or {}).items()]
    podman("run", "--detach", "--name", name, *RUN_FLAGS, *environment, image, *serve)
    container = Container(name, f"http://127.0.0.1:{port}")
    try:
        _wait_alive(container)
        yield container
    finally:
        podman("stop", "--time", "15", name, check=False, timeout=30)
        podman("rm", "--force", name, check=False)


def _wait_alive(container: Container, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = podman("inspect", "--format", "{{.State.Status}}", container.name, check=False).strip()
        if state in ("exited", "stopped"):
            raise RuntimeError(f"serve exited in its container:\n{container.logs()}")
        try:
            if httpx.get(f"{container.url}/livez", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"serve did not come up in {timeout:g}s:\n{container.logs()}")
