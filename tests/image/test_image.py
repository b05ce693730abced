"""The container image, built by `make image` (deploy/image/build.sh) and run as a cluster would.

Run with podman as uid 10001 on a read-only root filesystem, `canarypilot serve` from
the image must answer /healthz and /analyze from a real Prometheus as the installed
package does. Skipped, with the reason, only on a machine without buildah or podman.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

import canarypilot
from canarypilot.local.processes import free_port
from canarypilot.local.prometheus import LocalPrometheus
from tests.service.live import live_prometheus
from tests.support.image import BuiltImage, ImageUnavailable, build_image, run_image, serve_container

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MAX_IMAGE_BYTES = 250 * 1000 * 1000


@pytest.fixture(scope="module")
def image() -> BuiltImage:
    try:
        built = build_image()
    except ImageUnavailable as exc:
        pytest.skip(f"cannot build the image: {exc}")
    print(f"built {built.name} in {built.build_seconds:.0f}s")
    return built


@pytest.fixture(scope="module")
def prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPrometheus]:
    with live_prometheus(tmp_path_factory.mktemp("prom")) as running:
        yield running


def test_serve_from_the_image_answers_from_a_real_prometheus(
    image: BuiltImage, prom: LocalPrometheus
) -> None:
    with serve_container(image.name, ["--prometheus", prom.url]) as served:
        health = httpx.get(f"{served.url}/healthz", timeout=10)
        assert health.status_code == 200, health.text

        healthy = httpx.get(f"{served.url}/analyze", params={"service": "healthy"}, timeout=10).json()
        assert healthy["status"] == "proceed" and healthy["weight"] == 100.0
        # The step's evidence starts where the data shows the canary's share began: the
        # canary's requests are those of the slices from there to now (5 per second).
        step = healthy["step"]
        assert step["weight"] == pytest.approx(20.0, abs=1.0)
        seconds = healthy["at"] - step["since"]
        assert healthy["canary"]["requests"] == pytest.approx(5 * seconds, rel=0.1)

        regressed = httpx.get(
            f"{served.url}/analyze", params={"service": "regressed", "target_weight": "20"}, timeout=10
        ).json()
        assert regressed["status"] == "rollback" and regressed["gate"] == "fail"

        ghost = httpx.post(
            f"{served.url}/analyze", json={"service": "ghost", "target_weight": 10}, timeout=10
        )
        assert ghost.status_code == 200 and ghost.json()["gate"] == "wait"

        # As a restricted pod: uid 10001, and nothing can be written to the image's files.
        assert served.exec("id", "-u").stdout.strip() == "10001"
        written = served.exec("/opt/canarypilot/bin/python", "-c", "open('/opt/canarypilot/x', 'w')")
        assert written.returncode != 0 and "Read-only file system" in written.stderr


def test_serve_from_the_image_is_unready_while_prometheus_is_down(image: BuiltImage) -> None:
    with serve_container(image.name, ["--prometheus", f"http://127.0.0.1:{free_port()}"]) as served:
        assert httpx.get(f"{served.url}/livez", timeout=10).status_code == 200
        health = httpx.get(f"{served.url}/healthz", timeout=30)
        assert health.status_code == 503
        down = httpx.get(f"{served.url}/analyze", params={"service": "healthy"}, timeout=60)
        assert down.status_code == 503 and down.json()["status"] == "error"


def test_the_image_carries_the_package_version_and_stays_small(image: BuiltImage) -> None:
    found = image.inspect()
    labels = found["Labels"]
    assert isinstance(labels, dict)
    assert labels["org.opencontainers.image.version"] == canarypilot.__version__
    assert image.name.endswith(f":{canarypilot.__version__}")
    printed = run_image(image.name, "--version")
    assert printed.returncode == 0 and printed.stdout.strip() == f"canarypilot {canarypilot.__version__}"
    size = found["Size"]
    assert isinstance(size, int) and size < MAX_IMAGE_BYTES, f"{size / 1e6:.0f} MB"
    print(f"{image.name}: {size / 1e6:.0f} MB")


def test_the_image_leaves_the_simulator_out_and_says_which_extra_brings_it(image: BuiltImage) -> None:
    ran = run_image(image.name, "simulate", "latency-regression")
    assert ran.returncode == 2, ran.stderr
    assert "install canarypilot[sim]" in ran.stderr
    assert "Traceback" not in ran.stderr
