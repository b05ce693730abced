"""A real VictoriaMetrics (single node, Debian's ``victoria-metrics``) on loopback.

It serves the Prometheus query API (``/api/v1/query``, ``/api/v1/query_range``)
from its own storage. Deterministic data goes in through its JSON-lines import
API (``/api/v1/import``: one line per series with millisecond timestamps),
then ``/internal/force_flush`` makes it searchable at once. The same samples
backfilled into a ``LocalPrometheus`` give the two stores the same data, which
is how the tests compare them.

``-search.latencyOffset=0s``: VictoriaMetrics otherwise hides the last 30 s
before "now" from queries (samples still arriving); the data here is all in
the past, and the tests query it at fixed instants.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Self

import httpx

from canarypilot._exceptions import ConfigError
from canarypilot.local.processes import LocalServer, answers_http, free_port, require

#: One series: metric name, labels, ``(timestamp_seconds, value)`` samples in time order.
SeriesSamples = tuple[str, Mapping[str, str], Sequence[tuple[float, float]]]


class LocalVictoriaMetrics(LocalServer):
    """VictoriaMetrics on 127.0.0.1 with its own data directory.

    >>> # with LocalVictoriaMetrics(workdir) as vm:
    >>> #     vm.load(series); vm.url  -> 'http://127.0.0.1:PORT'
    """

    name = "victoria-metrics"

    def __init__(
        self, workdir: Path, *, port: int | None = None, basic_auth: tuple[str, str] | None = None
    ) -> None:
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.basic_auth = basic_auth

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, timeout: float = 60.0) -> Self:
        binary = require("victoria-metrics")
        self.workdir.mkdir(parents=True, exist_ok=True)
        argv = [
            binary,
            f"-httpListenAddr=127.0.0.1:{self.port}",
            f"-storageDataPath={self.workdir / 'data'}",
            "-retentionPeriod=100y",
            "-search.latencyOffset=0s",
            "-loggerLevel=WARN",
        ]
        if self.basic_auth is not None:
            argv += [f"-httpAuth.username={self.basic_auth[0]}", f"-httpAuth.password={self.basic_auth[1]}"]
        self._launch(argv, log_path=self.workdir / "victoria-metrics.log", timeout=timeout, cwd=self.workdir)
        return self

    def _ready(self) -> bool:
        return answers_http(f"{self.url}/health", timeout=1.0, statuses=(200, 401))

    def load(self, series: Iterable[SeriesSamples]) -> int:
        """Import ``series`` and flush them to searchable storage; returns the samples sent."""
        lines: list[str] = []
        sent = 0
        for name, labels, samples in series:
            lines.append(
                json.dumps(
                    {
                        "metric": {"__name__": name, **labels},
                        "values": [value for _, value in samples],
                        "timestamps": [round(ts * 1000) for ts, _ in samples],
                    }
                )
            )
            sent += len(samples)
        auth = httpx.BasicAuth(*self.basic_auth) if self.basic_auth else None
        with httpx.Client(base_url=self.url, auth=auth, timeout=120.0) as client:
            done = client.post("/api/v1/import", content="\n".join(lines).encode())
            if done.status_code >= 300:
                raise ConfigError(
                    f"VictoriaMetrics refused the import: HTTP {done.status_code} {done.text[:300]}"
                )
            client.get("/internal/force_flush").raise_for_status()
        return sent
