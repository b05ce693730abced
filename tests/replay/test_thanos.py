"""Replay and analyze through Thanos: a querier over an HA pair of Prometheus replicas.

Both replicas hold the same releases (promtool backfill), each with its own
``replica`` external label and a sidecar; the querier deduplicates on
``replica``. The decisions must equal those from one Prometheus with the same
data — and still do with one replica down.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from canarypilot._exceptions import ConfigError
from canarypilot.local.prometheus import LocalPrometheus, openmetrics_text
from canarypilot.metrics.prometheus import PrometheusMetrics
from canarypilot.model import Target
from canarypilot.policy import PrometheusSettings
from canarypilot.replay.fetch import fetch_slices
from canarypilot.replay.synthetic import TYPES
from canarypilot.replay.walk import Walker
from tests.replay import releases
from tests.replay.releases import SPAN, START
from tests.replay.test_replay import CLI, SETTINGS, SLICING
from tests.support.gobuild import go_binary
from tests.support.thanos import Querier, Replica, Sidecar, thanos_binary

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("promtool") is None, reason="needs Debian's prometheus package"),
    pytest.mark.skipif(go_binary() is None, reason="needs Go to build Thanos"),
]

SERVICES = ("healthy", "latency", "errors", "gap")


class Pair:
    def __init__(
        self, single: LocalPrometheus, replicas: list[Replica], sidecars: list[Sidecar], query: Querier
    ):
        self.single, self.replicas, self.sidecars, self.query = single, replicas, sidecars, query


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    binary = thanos_binary()
    assert binary is not None
    recorded = releases.recorded()
    text = openmetrics_text([s for h in recorded.values() for s in h.samples], TYPES)
    root = tmp_path_factory.mktemp("thanos")
    replicas = [Replica(root / name, openmetrics=text, replica=name) for name in ("a", "b")]
    with LocalPrometheus(root / "single", openmetrics=text) as single, replicas[0], replicas[1]:
        sidecars = [Sidecar(binary, r) for r in replicas]
        with sidecars[0], sidecars[1], Querier(binary, root / "query", sidecars) as query:
            yield Pair(single, replicas, sidecars, query)


def _verdicts(url: str, service: str, **settings: object) -> list[tuple[float, float, str]]:
    async def go() -> list[tuple[float, float, str]]:
        async with PrometheusMetrics(PrometheusSettings(url=url, **settings)) as provider:  # type: ignore[arg-type]
            fetched = await fetch_slices(
                provider, Target(service), start=START, end=START + SPAN, slicing=SLICING
            )
        walker = Walker(fetched.history, SLICING, interval=15.0)
        return [(i.at, i.weight, i.verdict.action.value) for i in walker.run(SETTINGS)]

    return asyncio.run(go())


def _analyze(url: str, service: str, at: float) -> tuple[int, str]:
    argv = [CLI, "analyze", "-p", url, "-s", service, "--at", str(at), "--format", "json"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)["status"]


def test_thanos_decides_like_one_prometheus_and_survives_a_replica_down(pair: Pair) -> None:
    single = {s: _verdicts(pair.single.url, s) for s in SERVICES}
    assert any(v[2] == "rollback" for v in single["latency"]), "the data holds a regression"
    for service in SERVICES:
        assert _verdicts(pair.query.url, service) == single[service], service
    for service, at in (("healthy", START + 1400), ("errors", START + 1400)):
        assert _analyze(pair.query.url, service, at) == _analyze(pair.single.url, service, at)

    pair.sidecars[1].stop()
    pair.replicas[1].stop()
    for service in SERVICES:
        assert _verdicts(pair.query.url, service) == single[service], f"{service}, replica b down"
    assert _analyze(pair.query.url, "errors", START + 1400) == _analyze(
        pair.single.url, "errors", START + 1400
    )


def test_the_tenant_header_selects_the_tenant_s_data(tmp_path: Path) -> None:
    """A querier enforcing tenancy on ``X-Scope-OrgID``: the header (``prometheus.headers``)
    reaches it, the right tenant gets its data and its verdicts, another gets none."""
    binary = thanos_binary()
    assert binary is not None
    recorded = releases.recorded()
    text = openmetrics_text(recorded["errors"].samples, TYPES)
    tenancy = ("--query.enforce-tenancy", "--query.tenant-header=X-Scope-OrgID")
    with (
        Replica(tmp_path / "a", openmetrics=text, replica="a", tenant="team-a") as replica,
        Sidecar(binary, replica) as sidecar,
        Querier(binary, tmp_path / "query", [sidecar], extra=tenancy) as query,
    ):
        mine = _verdicts(query.url, "errors", headers={"X-Scope-OrgID": "team-a"})
        assert any(v[2] == "rollback" for v in mine)
        with pytest.raises(ConfigError, match="no data"):
            _verdicts(query.url, "errors", headers={"X-Scope-OrgID": "team-b"})


def test_serve_answers_argo_through_thanos_like_from_one_prometheus(tmp_path: Path) -> None:
    """`canarypilot serve` in front of the querier of an HA pair holding the service tests'
    canaries around now (it asks at the wall clock, as Argo's calls do): the same answers
    as in front of one Prometheus, with both replicas up and with one down."""
    import time

    import httpx

    from tests.service.live import scenarios, serve
    from tests.support.promdata import openmetrics

    binary = thanos_binary()
    assert binary is not None
    data = scenarios(float(int(time.time()) + 600))
    text = openmetrics(*data.values())
    names = (*data, "ghost")

    def answers(url: str, name: str) -> dict[str, tuple[str, str | None]]:
        with serve(url, tmp_path / f"serve-{name}") as served:
            got = {
                n: httpx.get(f"{served.url}/analyze", params={"service": n, "target_weight": 20}).json()
                for n in names
            }
        return {n: (a["status"], a.get("gate")) for n, a in got.items()}

    replicas = [Replica(tmp_path / r, openmetrics=text, replica=r) for r in ("a", "b")]
    with LocalPrometheus(tmp_path / "single", openmetrics=text) as single, replicas[0], replicas[1]:
        expected = answers(single.url, "single")
        assert expected["regressed"][0] == "rollback" and expected["healthy"][0] == "proceed"
        assert expected["error-regressed"][0] == "rollback"
        sidecars = [Sidecar(binary, r) for r in replicas]
        with sidecars[0], sidecars[1], Querier(binary, tmp_path / "query", sidecars) as query:
            assert answers(query.url, "pair") == expected
            sidecars[0].stop()
            replicas[0].stop()
            assert answers(query.url, "one-down") == expected
