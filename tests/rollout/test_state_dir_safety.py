"""The state directory holds a rollout's secrets and its only copy of the truth: it is
private, written only by the controller holding its lock, and found only where the
rollout's name says (issue 12, defects 3 and 4, and the rollout-name risk)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from canarypilot import ConfigError, FakeClock, RecordingRouter
from canarypilot.cli import app
from canarypilot.model import Target
from canarypilot.rollout import RolloutController, RolloutSpec, StateStore
from canarypilot.rollout.config import REDACTED, parse_rollout_file, stored_copy
from tests.rollout.fakes import ScriptedMetrics, make_spec

runner = CliRunner()

SECRET_FILE = {
    "name": "payment-api",
    "target": {"service": "payment-api"},
    "router": {"type": "haproxy", "runtime_api": "/run/haproxy/admin.sock", "backend": "app"},
    "metrics": {
        "type": "prometheus",
        "url": "https://reader:hunter2@prometheus:9090",
        "bearer_token": "tok-sekrit",
        "headers": {"X-Scope-OrgID": "payments", "X-Api-Key": "key-sekrit"},
    },
    "notifications": {"webhooks": [{"url": "https://hooks.slack.com/services/T0/B0/sekrit"}]},
}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_the_state_directory_and_its_files_are_owner_only(tmp_path: Path) -> None:
    clock = FakeClock()
    state_dir = tmp_path / "rollouts" / "payment-api"
    with StateStore(state_dir) as store:
        await RolloutController(
            make_spec(), metrics=ScriptedMetrics(clock), router=RecordingRouter(), clock=clock, store=store
        ).run()
    assert mode(state_dir) == 0o700
    files = [p for p in state_dir.iterdir() if p.is_file()]
    assert {p.name for p in files} >= {"state.db", "audit.jsonl", "lock"}
    assert {p.name: mode(p) for p in files} == {p.name: 0o600 for p in files}


def test_a_directory_an_older_version_left_open_is_tightened(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    (tmp_path / "state.db").touch(mode=0o644)
    StateStore(tmp_path).close()
    assert (mode(tmp_path), mode(tmp_path / "state.db")) == (0o700, 0o600)


def test_the_stored_rollout_file_keeps_no_secret() -> None:
    text = yaml.safe_dump(SECRET_FILE)
    stored = stored_copy(parse_rollout_file(text), text)
    for secret in ("hunter2", "tok-sekrit", "key-sekrit", "sekrit"):
        assert secret not in stored
    assert yaml.safe_load(stored)["metrics"]["headers"]["X-Scope-OrgID"] == "payments"
    plain = yaml.safe_dump({k: v for k, v in SECRET_FILE.items() if k not in ("metrics", "notifications")})
    plain += "prometheus: {url: 'http://prometheus:9090'}  # kept as written\n"
    assert stored_copy(parse_rollout_file(plain), plain) == plain


def test_resume_without_the_file_asks_for_it_when_its_secrets_were_not_kept(tmp_path: Path) -> None:
    with StateStore(tmp_path) as store:
        store.lock()
        store.save(_state("payment-api"))
        text = yaml.safe_dump(SECRET_FILE)
        store.save_config(stored_copy(parse_rollout_file(text), text))
    result = runner.invoke(app, ["rollout", "--resume", "--state-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "without its secrets; pass --config FILE again" in result.stderr
    assert REDACTED not in result.stderr


def test_a_refused_second_controller_leaves_the_stored_file_alone(tmp_path: Path) -> None:
    original = yaml.safe_dump({**SECRET_FILE, "metrics": {"type": "prometheus", "url": "http://p:9090"}})
    changed = tmp_path / "changed.yaml"
    changed.write_text(original.replace("http://p:9090", "http://elsewhere:9090"))
    state_dir = tmp_path / "state"
    running = StateStore(state_dir)  # the live controller's store
    try:
        running.lock()
        running.save(_state("payment-api"))
        running.save_config(original)
        args = ["rollout", "--resume", "--config", str(changed), "--state-dir", str(state_dir)]
        result = runner.invoke(app, args)
        assert result.exit_code == 1
        assert "another controller is running" in result.stderr
        assert running.load_config() == original
    finally:
        running.close()


def test_a_reader_never_cuts_the_line_a_running_controller_is_writing(tmp_path: Path) -> None:
    with StateStore(tmp_path) as store:
        store.lock()
    audit = tmp_path / "audit.jsonl"
    audit.write_bytes(b'{"seq": 1, "kind": "ana')  # half a line, still being written
    with StateStore(tmp_path) as reader:  # what `rollout status` and `rollout pause` open
        assert reader.events() == []
    assert audit.read_bytes() == b'{"seq": 1, "kind": "ana'


@pytest.mark.parametrize("name", ["a/../../etc", "a/b", "x..y", "team:api"])
def test_a_rollout_name_is_one_identifier(name: str) -> None:
    with pytest.raises(ConfigError, match="a rollout name is one identifier"):
        RolloutSpec(name, Target("payment-api"))
    with pytest.raises(ConfigError, match="a rollout name is one identifier"):
        parse_rollout_file(yaml.safe_dump({**SECRET_FILE, "name": name}))


def _state(name: str):  # type: ignore[no-untyped-def]
    from canarypilot.rollout.events import Phase
    from canarypilot.rollout.store import RolloutState

    return RolloutState(
        name=name, phase=Phase.PROGRESSING, step=0, steps=4, weight=5.0,
        started_at=0.0, step_started_at=0.0, next_analysis_at=0.0,
    )  # fmt: skip


def test_a_bad_rollout_file_leaves_no_state_directory_behind(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**SECRET_FILE, "name": "../escape"}))
    state = tmp_path / "state"
    result = runner.invoke(app, ["rollout", "--config", str(bad), "--state-dir", str(state)])
    assert result.exit_code == 2, result.output
    assert "invalid rollout name '../escape'" in result.output
    assert not state.exists()
