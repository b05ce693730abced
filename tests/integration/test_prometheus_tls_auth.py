"""The Prometheus provider against a real Prometheus behind TLS and basic auth.

Prometheus' own ``--web.config.file`` serves HTTPS with a certificate from a
throwaway CA (``trustme``) and asks for a bcrypt-checked password. The provider
must answer with the CA bundle and the password, refuse a server it cannot
verify, say when the credentials are refused, and never show the password.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
import trustme

from canarypilot import Settings, Status, analyze
from canarypilot._exceptions import MetricsUnavailable, QueryError
from canarypilot.local.prometheus import LocalPrometheus
from canarypilot.metrics.prometheus import PrometheusMetrics
from canarypilot.model import Target
from tests.support.promdata import END, ServiceData, Traffic, openmetrics

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("promtool") is None, reason="needs Debian's prometheus package"),
]

USER, PASSWORD = "canarypilot", "s3cret-pa55word-for-tests"
DATA = ServiceData(
    "checkout",
    (
        Traffic("v1-stable", rps=20, latency=((0.04, 0.97), (0.2, 0.03)), error_fraction=0.001),
        Traffic("v2-canary", rps=5, latency=((0.04, 0.97), (0.2, 0.03)), error_fraction=0.001),
    ),
)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def secured(
    tmp_path_factory: pytest.TempPathFactory, ca: trustme.CA
) -> Iterator[tuple[LocalPrometheus, Path]]:
    workdir = tmp_path_factory.mktemp("tls")
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.cert_chain_pems[0].write_to_path(str(workdir / "server.crt"))
    cert.private_key_pem.write_to_path(str(workdir / "server.key"))
    ca.cert_pem.write_to_path(str(workdir / "ca.crt"))
    web = {
        "tls_server_config": {
            "cert_file": str(workdir / "server.crt"),
            "key_file": str(workdir / "server.key"),
        },
        "basic_auth_users": {USER: bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()},
    }
    with LocalPrometheus(workdir / "prom", openmetrics=openmetrics(DATA), web_config=web) as prom:
        assert prom.url.startswith("https://")
        yield prom, workdir / "ca.crt"


def settings(url: str, **prometheus: object) -> Settings:
    return Settings().merged({"prometheus": {"url": url, "retries": 0, **prometheus}})


async def test_the_ca_bundle_and_the_password_get_the_decision(
    secured: tuple[LocalPrometheus, Path],
) -> None:
    prom, ca_file = secured
    good = settings(prom.url, ca_bundle=str(ca_file), basic_auth_user=USER, basic_auth_password=PASSWORD)
    decision = await analyze("checkout", settings=good, at=END)
    assert decision.status is Status.PROCEED, decision.reasons
    assert decision.canary.requests == pytest.approx(DATA.requests("v2-canary", 300))
    assert decision.canary.latency_buckets is not None  # the histogram came through TLS too


async def test_a_server_it_cannot_verify_is_refused(secured: tuple[LocalPrometheus, Path]) -> None:
    prom, _ = secured
    unverified = settings(prom.url, basic_auth_user=USER, basic_auth_password=PASSWORD)
    async with PrometheusMetrics(unverified.prometheus, unverified.query, now=lambda: END) as provider:
        with pytest.raises(MetricsUnavailable, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
            await provider.snapshot(Target("checkout"))


async def test_wrong_credentials_are_named_and_the_password_is_not(
    secured: tuple[LocalPrometheus, Path],
) -> None:
    prom, ca_file = secured
    wrong = "wrong-" + PASSWORD
    bad = settings(prom.url, ca_bundle=str(ca_file), basic_auth_user=USER, basic_auth_password=wrong)
    async with PrometheusMetrics(bad.prometheus, bad.query, now=lambda: END) as provider:
        with pytest.raises(QueryError, match="refused the credentials") as err:
            await provider.snapshot(Target("checkout"))
    assert wrong not in str(err.value) and PASSWORD not in repr(bad)
