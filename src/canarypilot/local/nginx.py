"""A real nginx on loopback whose upstream weights come from a canarypilot include.

The generated ``nginx.conf`` keeps everything (pid, logs, temp files) in the
work directory, listens on a free 127.0.0.1 port for traffic and on another for
``/canarypilot/weight`` — the location ``NginxRouter`` polls to confirm that
the reloaded workers use the new weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Self

from canarypilot.local.processes import LocalServer, answers_http, free_port, require
from canarypilot.routing.nginx import NginxRouter, render_upstream

UPSTREAM = "canarypilot_app"


class LocalNginx(LocalServer):
    """nginx in front of ``stable`` and ``canary`` (host:port strings).

    >>> # with LocalNginx(workdir, stable="127.0.0.1:8001", canary="127.0.0.1:8002") as lb:
    >>> #     await lb.router().set_weight(10)
    """

    name = "nginx"

    def __init__(self, workdir: Path, *, stable: str, canary: str, port: int | None = None) -> None:
        self.workdir = Path(workdir)
        self.stable = stable
        self.canary = canary
        self.port = port or free_port()
        self.status_port = free_port()
        self.binary = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def include(self) -> Path:
        return self.workdir / "upstream.conf"

    @property
    def config_path(self) -> Path:
        return self.workdir / "nginx.conf"

    def router(self) -> NginxRouter:
        return NginxRouter(
            self.include,
            upstream=UPSTREAM,
            stable=self.stable,
            canary=self.canary,
            config=self.config_path,
            nginx=self.binary or require("nginx"),
            prefix=self.workdir,
            pid_file=self.workdir / "nginx.pid",
            confirm_url=f"http://127.0.0.1:{self.status_port}/canarypilot/weight",
        )

    def config(self) -> str:
        w = self.workdir
        temp = "\n".join(
            f"    {kind}_temp_path {w}/tmp/{kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        return f"""daemon off;
master_process on;
worker_processes 1;
pid {w}/nginx.pid;
error_log {w}/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log off;
{temp}
    include {self.include};
    server {{
        listen 127.0.0.1:{self.port};
        location / {{
            proxy_pass http://{UPSTREAM};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
    server {{
        listen 127.0.0.1:{self.status_port};
        location = /canarypilot/weight {{ return 200 "${UPSTREAM}_canarypilot_weight"; }}
    }}
}}
"""

    def start(self, *, timeout: float = 15.0) -> Self:
        self.binary = require("nginx")
        (self.workdir / "tmp").mkdir(parents=True, exist_ok=True)
        if not self.include.exists():
            self.include.write_text(render_upstream(UPSTREAM, self.stable, self.canary, 0.0, "0"))
        self.config_path.write_text(self.config())
        argv = [
            self.binary,
            "-c",
            str(self.config_path),
            "-p",
            str(self.workdir),
            "-e",
            str(self.workdir / "error.log"),
        ]
        self._launch(argv, log_path=self.workdir / "nginx.log", timeout=timeout)
        return self

    def _ready(self) -> bool:
        return answers_http(f"http://127.0.0.1:{self.status_port}/canarypilot/weight")

    def _diagnostics(self) -> str:
        return f"{super()._diagnostics()}\n{self._error_log()}"

    def _error_log(self) -> str:
        try:
            return "\n".join((self.workdir / "error.log").read_text().splitlines()[-10:])
        except OSError:
            return ""
