"""A bearer token against a real server: Prometheus behind nginx that demands it.

Prometheus' own web config has basic auth but no bearer tokens; teams that use tokens put
a proxy in front (an OAuth proxy, an ingress). Here Debian's nginx checks the
``Authorization`` header and proxies to a real Prometheus holding the service tests'
canaries: with the token ``analyze`` gets the decision one Prometheus gives directly;
without it, or with a wrong one, a one-line "refused the credentials" and no decision;
the token never appears in what it prints.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from canarypilot.local.nginx import LocalNginx
from canarypilot.local.prometheus import LocalPrometheus
from tests.service.live import live_prometheus

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("nginx") is None, reason="needs Debian's nginx package"),
]

TOKEN = "tok-5f1c9a0e77d2"
CLI = str(Path(sys.executable).with_name("canarypilot"))


class BearerProxy(LocalNginx):
    """nginx proxying to Prometheus only for requests carrying ``Bearer TOKEN``."""

    def config(self) -> str:
        check = f'if ($http_authorization != "Bearer {TOKEN}") {{ return 401 "no valid bearer token\\n"; }}'
        return super().config().replace("location / {", "location / {\n            " + check, 1)


@pytest.fixture(scope="module")
def prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPrometheus]:
    with live_prometheus(tmp_path_factory.mktemp("prom")) as running:
        yield running


@pytest.fixture(scope="module")
def proxy(prom: LocalPrometheus, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BearerProxy]:
    upstream = prom.url.removeprefix("http://")
    with BearerProxy(tmp_path_factory.mktemp("nginx"), stable=upstream, canary=upstream) as running:
        yield running


def analyze(url: str, service: str, token: str | None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(Path.home())}
    if token is not None:
        env["CANARYPILOT_PROMETHEUS__BEARER_TOKEN"] = token
    argv = [CLI, "analyze", "-p", url, "-s", service, "--format", "json"]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False, env=env)


@pytest.mark.parametrize("service", ["healthy", "regressed", "error-regressed"])
def test_the_token_gets_the_decision_one_prometheus_gives(
    prom: LocalPrometheus, proxy: BearerProxy, service: str
) -> None:
    direct = analyze(prom.url, service, None)
    through = analyze(proxy.url, service, TOKEN)
    assert through.returncode == direct.returncode, through.stderr
    assert json.loads(through.stdout)["status"] == json.loads(direct.stdout)["status"]
    assert TOKEN not in through.stdout + through.stderr


@pytest.mark.parametrize("token", [None, "tok-wrong-0000"])
def test_no_token_or_a_wrong_one_is_refused_in_one_line(proxy: BearerProxy, token: str | None) -> None:
    refused = analyze(proxy.url, "healthy", token)
    assert refused.returncode not in (0, 3, 4), refused.stdout  # no decision
    assert "refused the credentials" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert "Traceback" not in refused.stderr and TOKEN not in refused.stderr
