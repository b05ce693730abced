"""Scenario files: the schema's errors name the field, defaults fill the rest, the suite is valid."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from canarypilot._exceptions import ConfigError
from canarypilot.sim.bench import builtin_suite, load_suite
from canarypilot.sim.scenario import load_scenario, parse_scenario, schema

BASE: dict[str, Any] = {"name": "s", "stable": {"latency": {"median_ms": 50, "p99_ms": 160}}}


def with_(**extra: Any) -> dict[str, Any]:
    return {**BASE, **extra}


@pytest.mark.parametrize(
    ("data", "field", "problem"),
    [
        (
            with_(events=[{"type": "regression", "latency_factor": 0.5}]),
            "events[0].latency_factor",
            "minimum",
        ),
        (with_(events=[{"type": "warmup_spike", "magnitude": 2, "decay": 3}]), "events[0].decay", "unknown"),
        (with_(events=[{"type": "warmup_spike"}]), "events[0].magnitude", "required"),
        (with_(events=[{"type": "meteor"}]), "events[0].type", "is not one of"),
        (with_(monitoring={"scrape_interval_seconds": "15s"}), "monitoring.scrape_interval_seconds", "type"),
        (with_(canary={"latency": {"median_ms": 50}}), "canary.latency.p99_ms", "required"),
        (with_(traffic={"rps": 0}), "traffic.rps", "less than or equal"),
        (with_(colour="blue"), "colour", "unknown field"),
        ({"stable": {}}, "name", "required"),
        (with_(name="bad name!"), "name", "invalid scenario name"),
        (with_(canary={"latency": {"median_ms": 90, "p99_ms": 80}}), "canary.latency.p99_ms", "greater"),
    ],
)
def test_errors_name_the_field(data: dict[str, Any], field: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_scenario(data, source="x.yaml")
    message = str(caught.value)
    assert message.startswith(f"x.yaml: {field}"), message
    assert problem in message
    assert "\n" not in message


def test_defaults_and_derived_ground_truth() -> None:
    healthy = parse_scenario(BASE)
    assert healthy.expect == "promote" and healthy.canary == healthy.stable
    assert healthy.monitoring.scrape_interval_seconds == 15
    assert healthy.monitoring.buckets_seconds[-1] == 10.0  # prometheus_client's default buckets
    bad = parse_scenario(with_(events=[{"type": "regression", "at_seconds": 30, "added_errors": 0.02}]))
    assert bad.expect == "rollback" and bad.regression_onset() == 30
    roomy = parse_scenario(with_(traffic={"rps": 50}, events=[{"type": "capacity_knee", "capacity_rps": 80}]))
    assert roomy.expect == "promote"  # a knee above the full traffic never bites


def test_latency_model_matches_its_median_and_p99() -> None:
    s = parse_scenario(BASE)
    import math

    assert math.exp(math.log(0.050) + 2.3263478740408408 * s.stable.latency.sigma) == pytest.approx(0.160)


def test_file_errors_are_config_errors(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="broken.yaml:2: invalid YAML"):
        load_scenario(broken)
    with pytest.raises(ConfigError, match="cannot read scenario"):
        load_scenario(tmp_path / "missing.yaml")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("a: &a [x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\nname: s\n")
    with pytest.raises(ConfigError, match="aliases"):
        load_scenario(bomb)
    # Nested 2,000 deep: a RecursionError ("internal error") before scenarios shared the
    # bounded loader; and a key written twice is refused, not the last one kept.
    deep = tmp_path / "deep.yaml"
    deep.write_text("[" * 2000)
    with pytest.raises(ConfigError, match="deep.yaml:1: invalid YAML: nested more than 200 levels"):
        load_scenario(deep)
    twice = tmp_path / "twice.yaml"
    twice.write_text("name: a\nname: b\n")
    with pytest.raises(ConfigError, match="twice.yaml:2: invalid YAML: duplicate key 'name'"):
        load_scenario(twice)
    huge = tmp_path / "huge.yaml"
    huge.write_text("#" * (300 * 1024))
    with pytest.raises(ConfigError, match="larger than"):
        load_scenario(huge)


def test_builtin_suite_is_valid_against_the_shipped_schema() -> None:
    suite = builtin_suite()
    families = {s.family for s in suite}
    assert len(families) >= 12
    assert {"promote", "rollback"} <= {s.expect for s in suite}
    folder = Path(__file__).parents[2] / "src/canarypilot/sim/scenarios"
    for path in folder.glob("*.yaml"):
        jsonschema.Draft202012Validator(schema()).validate(yaml.safe_load(path.read_text()))


def test_a_suite_rejects_duplicate_names(tmp_path: Path) -> None:
    for file in ("a.yaml", "b.yaml"):
        (tmp_path / file).write_text(yaml.safe_dump(BASE))
    with pytest.raises(ConfigError, match="repeated: s"):
        load_suite(tmp_path)
    with pytest.raises(ConfigError, match="not a directory"):
        load_suite(tmp_path / "a.yaml")


def test_builtin_families_model_the_six_causes_of_issue_10() -> None:
    suite = {s.name: s for s in builtin_suite()}
    # 1. capacity that gives out between 40 % and 100 %: a knee only a judged high step can see.
    for name, share in (("capacity-gives-out-at-60pct", 0.6), ("capacity-gives-out-at-85pct", 0.85)):
        s = suite[name]
        assert s.expect == "rollback" and s.knees[0].capacity_rps == pytest.approx(share * s.rps)
    # 2. correlated noise and stalls on healthy canaries.
    assert suite["healthy-gc-stalls"].episodes[0].versions == "both"
    assert suite["healthy-canary-stalls"].episodes[0].versions == "canary"
    assert suite["healthy-shared-jitter"].jitter is not None
    assert all(suite[n].expect == "promote" for n in ("healthy-gc-stalls", "healthy-shared-jitter"))
    # 3. a +20 % regression, just beyond the 15 % threshold.
    assert suite["latency-regression-20"].regressions[0].latency_factor == 1.2
    # 4. low traffic: under one canary request a second at 5 %, and a 2x regression there.
    low = suite["low-traffic-regression-2x"]
    assert low.rps * 0.05 < 1 and low.expect == "rollback"
    assert suite["healthy-low-traffic"].expect == "promote"
    # 5. slow warm-ups of 1 and 3 minutes on healthy canaries.
    assert [suite[f"healthy-slow-warmup-{m}min"].warmups[0].decay_seconds for m in (1, 3)] == [60, 180]
    # 6. the article's monitoring: 30 s scrapes, 20 s remote-write lag.
    mon = suite["healthy-scrape-30s-lag-20s"].monitoring
    assert (mon.scrape_interval_seconds, mon.scrape_lag_seconds) == (30, 20)
    # Bad by the canary's own model, no event at all.
    assert (
        suite["canary-slower-own-model"].expect == "rollback"
        and not suite["canary-slower-own-model"].regressions
    )
