"""Go programs the tests build from Go modules, cached outside the clone.

Two test suites need Go code that no Debian package ships: Argo Rollouts' own
analysis controller (``tests/contract/argo``) and kube-apiserver with etcd
(``tests/cluster``). Both are compiled from their Go modules, with their module
and build caches under ``~/.cache/canarypilot/<name>/`` and the binaries in a
folder named by a hash of the sources that decide them, so a repeat run (or a
second CI run on the same machine) skips the build. A file lock makes concurrent
sessions build once.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path


class BuildFailed(Exception):
    """A ``go`` command failed; the message holds the command and the end of its output."""


def go_binary() -> str | None:
    """The ``go`` command: on PATH, or where the machines install it."""
    return shutil.which("go") or next((p for p in ("/usr/local/go/bin/go",) if Path(p).exists()), None)


def cache_dir(name: str) -> Path:
    """``~/.cache/canarypilot/<name>`` (or under ``$XDG_CACHE_HOME``)."""
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "canarypilot" / name


def go_env(cache: Path) -> dict[str, str]:
    """The environment for ``go`` with every cache under ``cache``, the module graph read-only."""
    return {
        **os.environ,
        "GOPATH": str(cache / "gopath"),
        "GOMODCACHE": str(cache / "mod"),
        "GOCACHE": str(cache / "build"),
        "GOFLAGS": "-modcacherw -buildvcs=false -mod=readonly",
        "GOTOOLCHAIN": "local",
    }


def build_key(folder: Path, sources: Iterable[str]) -> str:
    """A short hash of the files (relative to ``folder``) that decide the binaries."""
    digest = hashlib.sha256()
    for name in sources:
        digest.update((folder / name).read_bytes())
    return digest.hexdigest()[:16]


def cached_build(
    cache: Path, key: str, names: Iterable[str], build: Callable[[dict[str, Path]], None]
) -> bool:
    """Make sure ``cache/bin/<key>/<name>`` exists for every name; ``build`` writes the
    missing ones (it gets each name's ``.partial`` path, renamed once it returns).

    Returns whether a build ran (False: every binary came from the cache).
    """
    folder = cache / "bin" / key
    targets = {name: folder / name for name in names}
    if all(path.exists() for path in targets.values()):
        return False
    folder.mkdir(parents=True, exist_ok=True)
    with (cache / "build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # concurrent sessions build once
        if all(path.exists() for path in targets.values()):
            return False
        partial = {name: path.with_name(path.name + ".partial") for name, path in targets.items()}
        build(partial)
        for name, path in targets.items():
            partial[name].rename(path)
    return True


def run_go(go: str, args: list[str], *, cwd: Path, cache: Path, timeout: float) -> None:
    """Run ``go <args>`` in ``cwd`` with the caches under ``cache``; ``BuildFailed`` with the
    command and the end of its stderr if it fails."""
    result = subprocess.run(
        [go, *args], cwd=cwd, env=go_env(cache), capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise BuildFailed(f"`go {' '.join(args)}` in {cwd} failed:\n{result.stderr[-4000:]}")


def go_build(
    go: str, package: str, output: Path, *, cwd: Path, cache: Path, ldflags: str, timeout: float
) -> None:
    """``go build`` one command into ``output``: stripped, reproducible paths, two jobs.

    ``-p 2``: the machines have two cores; more parallel compiles only add memory pressure.
    """
    args = [
        "build",
        "-p",
        "2",
        "-trimpath",
        "-ldflags",
        f"-s -w {ldflags}".strip(),
        "-o",
        str(output),
        package,
    ]
    run_go(go, args, cwd=cwd, cache=cache, timeout=timeout)


def module_dir(go: str, cache: Path, module: str, *, timeout: float = 300) -> Path:
    """Where ``module`` (``path@version``) lies in ``cache``'s module cache, downloaded through
    the Go module proxy if it is not there yet; ``BuildFailed`` if the download fails."""
    import json

    cache.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [go, "mod", "download", "-json", module],
        cwd=cache,
        env=go_env(cache),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise BuildFailed(
            f"`go mod download {module}` failed:\n{result.stderr[-2000:]}{result.stdout[-2000:]}"
        )
    return Path(json.loads(result.stdout)["Dir"])
