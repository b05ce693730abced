"""NginxRouter logic that needs no nginx: the generated include and hostile input."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from canarypilot._exceptions import ConfigError, RouterError
from canarypilot.routing.nginx import SCALE, NginxRouter, render_upstream


@pytest.mark.parametrize("weight", [0.1, 5, 12.5, 50, 99.9])
def test_upstream_weights_are_per_mille_and_add_up(weight: float) -> None:
    text = render_upstream("app", "10.0.0.1:80", "10.0.0.2:80", weight, "ab12")
    stable, canary = (int(w) for w in re.findall(r"weight=(\d+);", text))
    assert stable + canary == SCALE
    assert canary / SCALE * 100 == pytest.approx(weight)


def test_zero_and_full_mark_one_server_down() -> None:
    assert "server 10.0.0.2:80 down;" in render_upstream("app", "10.0.0.1:80", "10.0.0.2:80", 0, "a")
    assert "server 10.0.0.1:80 down;" in render_upstream("app", "10.0.0.1:80", "10.0.0.2:80", 100, "a")


@pytest.mark.parametrize(
    ("upstream", "server"),
    [("app; include /etc/passwd", "10.0.0.1:80"), ("app", "10.0.0.1:80; }"), ("app", "evil\n:80")],
)
def test_names_that_could_inject_config_are_refused(upstream: str, server: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        NginxRouter(tmp_path / "a.conf", upstream=upstream, stable=server, canary="10.0.0.2:80", config="x")


async def test_weight_is_read_back_from_the_include(tmp_path: Path) -> None:
    include = tmp_path / "app.conf"
    router = NginxRouter(include, upstream="app", stable="10.0.0.1:80", canary="10.0.0.2:80", config="x")
    assert await router.get_weight() == 0.0
    include.write_text(render_upstream("app", "10.0.0.1:80", "10.0.0.2:80", 12.5, "ff"))
    assert await router.get_weight() == 12.5
    include.write_text("upstream app { server a:1; }\n")
    with pytest.raises(RouterError, match="not written by canarypilot"):
        await router.get_weight()


def test_only_workers_that_accept_connections_count(tmp_path: Path) -> None:
    import os

    from canarypilot.routing.nginx import _serving, serving_workers

    assert serving_workers(os.getpid()) == set()  # pytest has no nginx workers
    assert _serving({os.getpid(), 2**22 + 1}) == set()  # not a worker; no such process
