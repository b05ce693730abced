"""A real Prometheus on loopback: with backfilled data, scrape targets, or both.

Deterministic data goes in through ``promtool tsdb create-blocks-from
openmetrics``; the server is then pointed at that data directory. Retention is
set very long so that backfilled samples from any date stay queryable.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import yaml

from canarypilot._exceptions import ConfigError
from canarypilot.local.processes import LocalServer, answers_http, free_port, require


@dataclass(frozen=True, slots=True)
class ScrapeJob:
    """A scrape job: ``targets`` are host:port strings, ``labels`` added to every series."""

    name: str
    targets: Sequence[str]
    labels: Mapping[str, str]
    interval: str = "15s"


def openmetrics_text(
    samples: Iterable[tuple[str, Mapping[str, str], float, float]], types: Mapping[str, str] | None = None
) -> str:
    """OpenMetrics exposition of ``(name, labels, timestamp_seconds, value)`` samples.

    Samples of one metric family are grouped and time-ordered, as promtool needs;
    ``types`` maps a family name to ``counter``, ``gauge`` or ``histogram``.
    """
    families: dict[str, list[tuple[str, Mapping[str, str], float, float]]] = {}
    for name, labels, ts, value in samples:
        family = _family(name, types or {})
        families.setdefault(family, []).append((name, labels, ts, value))
    lines: list[str] = []
    for family, rows in families.items():
        kind = (types or {}).get(family, "unknown")
        lines.append(f"# TYPE {family} {kind}")
        rows.sort(key=lambda r: (r[0], sorted(r[1].items()), r[2]))
        for name, labels, ts, value in rows:
            lab = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
            lines.append(f"{name}{{{lab}}} {_number(value)} {ts:.3f}")
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def _family(name: str, types: Mapping[str, str]) -> str:
    for suffix in ("_bucket", "_count", "_sum", "_total", "_created"):
        base = name[: -len(suffix)]
        if name.endswith(suffix) and base in types:
            return base
    return name


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def backfill(openmetrics: str, data_dir: Path) -> None:
    """Write OpenMetrics text into a TSDB directory with promtool."""
    promtool = require("promtool", "prometheus")
    data_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".om", delete=False, dir=data_dir.parent) as fh:
        fh.write(openmetrics)
        source = Path(fh.name)
    try:
        result = subprocess.run(
            [promtool, "tsdb", "create-blocks-from", "openmetrics", str(source), str(data_dir)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    finally:
        source.unlink(missing_ok=True)
    if result.returncode != 0:
        raise ConfigError(f"promtool backfill failed: {(result.stderr or result.stdout).strip()[-800:]}")


class LocalPrometheus(LocalServer):
    """A Prometheus server on 127.0.0.1 with its own config and data directory.

    >>> # with LocalPrometheus(workdir, openmetrics=text) as prom:
    >>> #     prom.url  -> 'http://127.0.0.1:PORT'
    """

    name = "prometheus"

    def __init__(
        self,
        workdir: Path,
        *,
        openmetrics: str | None = None,
        scrape_jobs: Sequence[ScrapeJob] = (),
        rule_files: Sequence[Path] = (),
        evaluation_interval: str = "15s",
        port: int | None = None,
        web_config: Mapping[str, object] | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.openmetrics = openmetrics
        self.scrape_jobs = list(scrape_jobs)
        self.rule_files = list(rule_files)
        self.evaluation_interval = evaluation_interval
        self.port = port or free_port()
        #: Prometheus' ``--web.config.file``: ``tls_server_config`` (then the URL is
        #: https) and ``basic_auth_users`` (bcrypt hashes), as the server reads them.
        self.web_config = dict(web_config) if web_config is not None else None

    @property
    def url(self) -> str:
        tls = self.web_config is not None and "tls_server_config" in self.web_config
        return f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"

    def config(self) -> dict[str, object]:
        return {
            "global": {"scrape_interval": "15s", "evaluation_interval": self.evaluation_interval},
            "rule_files": [str(p) for p in self.rule_files],
            "scrape_configs": [
                {
                    "job_name": job.name,
                    "scrape_interval": job.interval,
                    "honor_labels": True,
                    "static_configs": [{"targets": list(job.targets), "labels": dict(job.labels)}],
                }
                for job in self.scrape_jobs
            ],
        }

    def start(self, *, timeout: float = 60.0) -> Self:
        binary = require("prometheus")
        self.workdir.mkdir(parents=True, exist_ok=True)
        data = self.workdir / "data"
        if self.openmetrics is not None:
            backfill(self.openmetrics, data)
        config = self.workdir / "prometheus.yml"
        config.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        argv = [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={data}",
            "--storage.tsdb.retention.time=100y",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--web.enable-lifecycle",
            "--log.level=warn",
        ]
        if self.web_config is not None:
            web = self.workdir / "web.yml"
            web.write_text(yaml.safe_dump(self.web_config, sort_keys=False))
            argv.append(f"--web.config.file={web}")
        self._launch(argv, log_path=self.workdir / "prometheus.log", timeout=timeout, cwd=self.workdir)
        return self

    def _ready(self) -> bool:
        if self.web_config is None:
            return answers_http(f"{self.url}/-/ready", timeout=1.0)
        # Behind TLS and passwords the probe only asks whether the server answers: a 401 is
        # an answer, and its certificate is the caller's to check.
        return answers_http(f"{self.url}/-/ready", timeout=1.0, statuses=(200, 401), verify=False)
