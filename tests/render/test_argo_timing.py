"""`render argo --warmup/--observe/--interval`: the gate's timings, compressed or stretched,
with its counts and limits following (the end-to-end tests run the ladder in seconds)."""

from __future__ import annotations

import pytest

from canarypilot._exceptions import ConfigError
from canarypilot.cli import main
from canarypilot.policy import Settings
from canarypilot.render.argo import ArgoOptions, gate_template


def metrics(**timing: int) -> dict[str, dict[str, object]]:
    options = ArgoOptions(service="web", image="web:2", **timing)
    return {m["name"]: m for m in gate_template(options, Settings())["spec"]["metrics"]}


def test_the_default_warmup_is_the_breakers() -> None:
    found = metrics()
    assert found["slo-guard"]["initialDelay"] == "30s"
    assert found["safe-weight"]["initialDelay"] == "30s"  # asked from the warm-up's end on
    # every 15 s of the 240 s window: 17 answers, 16 of which may be "wait"
    assert (found["safe-weight"]["count"], found["safe-weight"]["inconclusiveLimit"]) == (17, 16)


def test_compressed_timings_keep_the_guard_covering_the_observation_window() -> None:
    found = metrics(warmup_seconds=1, observe_seconds=2, interval_seconds=1)
    guard, gate = found["slo-guard"], found["safe-weight"]
    assert (guard["initialDelay"], guard["interval"], guard["count"]) == ("1s", "1s", 3)
    assert (gate["initialDelay"], gate["count"], gate["inconclusiveLimit"]) == ("1s", 3, 2)
    assert guard["failureLimit"] == 0  # one rollback answer aborts: the evidence has already accumulated


def test_a_warmup_out_of_range_is_refused() -> None:
    with pytest.raises(ConfigError, match="--warmup"):
        ArgoOptions(service="web", image="web:2", warmup_seconds=-1)


def test_the_cli_takes_the_warmup(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["render", "argo", "--service", "web", "--image", "web:2", "--warmup", "5", "--observe", "4",
              "--interval", "2"])  # fmt: skip
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert "initialDelay: 5s" in out and "count: 3" in out and "inconclusiveLimit: 2" in out
