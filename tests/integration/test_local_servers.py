"""The local launchers' shared lifecycle, against the real binaries: ready, failed, stopped."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from canarypilot._exceptions import PermanentError
from canarypilot.local.haproxy import LocalHAProxy
from canarypilot.local.nginx import LocalNginx
from canarypilot.local.processes import answers_http, free_port
from canarypilot.local.prometheus import LocalPrometheus

pytestmark = pytest.mark.integration


def test_a_started_server_answers_and_is_gone_after_the_block(tmp_path: Path) -> None:
    with LocalPrometheus(tmp_path / "prom") as prom:
        assert prom.process is not None
        pid = prom.process.proc.pid
        assert answers_http(f"{prom.url}/-/ready")
    assert prom.process is None and not os.path.exists(f"/proc/{pid}")
    prom.stop()  # twice is fine


def test_a_server_that_dies_at_start_says_why_and_leaves_nothing(tmp_path: Path) -> None:
    broken = tmp_path / "rules.yml"
    broken.write_text("groups: [{name: x, rules: [{record: 'bad name', expr: 'up'}]}]\n")
    prom = LocalPrometheus(tmp_path / "prom", rule_files=[broken])
    with pytest.raises(PermanentError, match="prometheus exited with code") as err:
        prom.start(timeout=30)
    assert "bad name" in str(err.value) or "rule" in str(err.value)
    assert prom.process is None


def test_haproxy_and_nginx_share_the_lifecycle(tmp_path: Path) -> None:
    stable, canary = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    with LocalHAProxy(tmp_path / "lb", stable=stable, canary=canary) as lb:
        assert lb.process is not None and lb.process.running
        socket_dir = Path(lb.runtime_socket).parent
    assert lb.process is None and not socket_dir.exists()
    with LocalNginx(tmp_path / "ngx", stable=stable, canary=canary) as ngx:
        assert ngx.process is not None and ngx.process.running
    assert ngx.process is None
