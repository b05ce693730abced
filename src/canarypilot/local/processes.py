"""Starting and stopping real servers on loopback: free ports, readiness, clean shutdown.

The demo, ``make demo`` and the integration tests start Prometheus, HAProxy and
nginx from Debian's packages this way; nothing listens beyond 127.0.0.1 and
everything started is stopped, also on errors.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from canarypilot._exceptions import ConfigError, PermanentError, TemporaryError


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def require(binary: str, package: str | None = None) -> str:
    """The path of ``binary``, or a ConfigError telling which Debian package brings it."""
    path = shutil.which(binary) or next(
        (p for p in (f"/usr/sbin/{binary}", f"/usr/bin/{binary}") if Path(p).exists()), None
    )
    if path is None:
        raise ConfigError(
            f"{binary} is not installed; install it with: apt-get install -y {package or binary}"
        )
    return path


def _die_with_parent(parent: int) -> Callable[[], None]:
    """A ``preexec_fn`` asking Linux to SIGTERM the child when its parent dies, so a
    SIGKILLed demo or test run leaves no Prometheus or HAProxy behind.

    ``PR_SET_PDEATHSIG`` fires when the *thread* that started the child ends: the
    launchers run on the main thread or on an event loop's executor threads, which
    outlive the servers they start. Elsewhere than Linux this does nothing.
    """

    def preexec() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        except (OSError, AttributeError):
            return
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


_PR_SET_PDEATHSIG = 1


class ManagedProcess:
    """A child process with its output in a log file, stopped with SIGTERM then SIGKILL."""

    def __init__(self, argv: Sequence[str], *, log_path: Path, cwd: Path | None = None) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        self._log = log_path.open("ab")
        try:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                start_new_session=True,  # its own process group: stopped as one
                preexec_fn=_die_with_parent(os.getpid()),
            )
        except OSError as exc:
            self._log.close()
            raise ConfigError(f"cannot start {self.argv[0]}: {exc.strerror or exc}") from exc

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                self.proc.wait(5)
        self._log.close()


class LocalServer:
    """What the local launchers share: launch, wait until ready (or stop and raise), stop, ``with``.

    A subclass writes its configuration in ``start`` and calls ``_launch``; it says
    when the server is ready (``_ready``) and what to show when it is not
    (``_diagnostics``, the process log by default).
    """

    name = "server"
    process: ManagedProcess | None = None

    def start(self, *, timeout: float = 30.0) -> Self:
        raise NotImplementedError

    def _launch(
        self, argv: Sequence[str], *, log_path: Path, timeout: float, cwd: Path | None = None
    ) -> None:
        self.process = ManagedProcess(argv, log_path=log_path, cwd=cwd)
        try:
            deadline = time.monotonic() + timeout
            while not self._ready():
                if not self.process.running:
                    code = self.process.proc.returncode
                    # It stopped by itself (a bad rule file, a port taken): starting it again
                    # with the same configuration ends the same way.
                    raise PermanentError(f"{self.name} exited with code {code}:\n{self._diagnostics()}")
                if time.monotonic() >= deadline:
                    raise TemporaryError(f"{self.name} not ready after {timeout:g}s:\n{self._diagnostics()}")
                time.sleep(0.05)
        except BaseException:
            self.stop()
            raise

    def _ready(self) -> bool:
        raise NotImplementedError

    def _diagnostics(self) -> str:
        return "" if self.process is None else self.process.log_tail()

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL); safe to call twice."""
        if self.process is not None:
            self.process.stop()
            self.process = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def answers_http(
    url: str, *, timeout: float = 0.5, statuses: Collection[int] = (200,), verify: bool = True
) -> bool:
    """Whether ``url`` answers right now with one of ``statuses``."""
    import httpx

    try:
        return httpx.get(url, timeout=timeout, verify=verify).status_code in statuses
    except httpx.HTTPError:
        return False
