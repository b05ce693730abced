"""Settings: the article's defaults, YAML < environment < flags, and errors that name the key.

Also keeps docs/configuration.md honest: every field of ``Settings`` must be
documented there with its environment variable.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from canarypilot import ConfigError, Settings, load_settings
from canarypilot.policy import ENV_PREFIX, parse_duration

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "settings.yaml"
    path.write_text(text)
    return path


def test_defaults_are_the_articles_numbers() -> None:
    s = load_settings(environ={})
    assert (s.slo.max_latency_delta, s.slo.max_error_delta) == (0.15, 0.02)
    assert (s.interpolation.min_weight, s.interpolation.max_weight) == (5.0, 100.0)
    assert (s.interpolation.latency_decay, s.interpolation.error_slope) == (10.0, 20.0)
    assert (s.interpolation.safety_floor, s.interpolation.error_floor) == (0.1, 0.2)
    assert (s.query.window, s.query.quantile) == ("5m", 0.99)
    assert (s.query.canary_version, s.query.stable_version) == ("v2-canary", "v1-stable")
    assert s.query.latency_metric == "http_request_duration_seconds_bucket"


def test_yaml_file_sets_nested_values(tmp_path: Path) -> None:
    path = write(tmp_path, "slo:\n  max_latency_delta: 0.25\nprometheus:\n  url: http://prom:9090/\n")
    s = load_settings(path, environ={})
    assert s.slo.max_latency_delta == 0.25
    assert s.prometheus.url == "http://prom:9090", "a trailing slash is dropped"
    assert s.slo.max_error_delta == 0.02, "unset keys keep their defaults"


def test_environment_beats_the_file_and_flags_beat_both(tmp_path: Path) -> None:
    path = write(tmp_path, "query:\n  window: 10m\n  quantile: 0.95\n")
    env = {"CANARYPILOT_QUERY__WINDOW": "2m"}
    assert load_settings(path, environ=env).query.window == "2m"
    assert load_settings(path, environ=env).query.quantile == 0.95
    flags = {"query": {"window": "1m", "quantile": None}}
    s = load_settings(path, environ=env, overrides=flags)
    assert (s.query.window, s.query.quantile) == ("1m", 0.95), "a flag left unset (None) changes nothing"


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("slo:\n  max_latency_deltaa: 0.2\n", "slo.max_latency_deltaa: unknown key"),
        ("sloo:\n  max_latency_delta: 0.2\n", "sloo: unknown key"),
        ("slo:\n  max_latency_delta: high\n", "slo.max_latency_delta: Input should be a valid number"),
        ("slo:\n  max_latency_delta: -1\n", "slo.max_latency_delta: Input should be greater than 0"),
        ("interpolation:\n  min_weight: 50\n  max_weight: 20\n", "min_weight must not exceed max_weight"),
        ("query:\n  job_label: 'job\"}'\n", "query.job_label"),
        ("query:\n  canary_version: 'v2\"} or vector(1)'\n", "query.canary_version"),
        ("query:\n  window: 5 minutes\n", "query.window"),
        ("query:\n  extra_selector: 'a=\"b\"} or vector(1)'\n", "query.extra_selector"),
        ("query:\n  latency_template: 'rate(x{$sel}[$window])'\n", "unknown placeholder(s) $sel"),
        ("prometheus:\n  url: prom:9090\n", "prometheus.url"),
    ],
)
def test_a_wrong_key_or_value_is_an_error_naming_it(tmp_path: Path, text: str, named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text), environ={})
    assert named in str(caught.value)
    assert str(tmp_path) in str(caught.value), "the error says which file"


def test_file_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="mapping of sections, not list"):
        load_settings(write(tmp_path, "- slo\n- query\n"), environ={})


def test_empty_file_means_defaults(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, ""), environ={}) == Settings()


def test_environment_values_are_typed_by_the_field() -> None:
    s = load_settings(
        environ={
            "CANARYPILOT_PROMETHEUS__BEARER_TOKEN": "12345",
            "CANARYPILOT_PROMETHEUS__TLS_VERIFY": "false",
            "CANARYPILOT_PROMETHEUS__HEADERS": "{X-Scope-OrgID: team-a}",
            "CANARYPILOT_ROLLOUT__PAUSES_SECONDS": "[10, 20]",
            "CANARYPILOT_SLO__MIN_CANARY_REQUESTS": "50",
            "UNRELATED": "x",
            "CANARYPILOT_NOT_A_SETTING": "ignored: no double underscore",
        }
    )
    assert s.prometheus.bearer_token == "12345", "a numeric token stays a string"
    assert s.prometheus.tls_verify is False
    assert s.prometheus.headers == {"X-Scope-OrgID": "team-a"}
    assert s.rollout.pauses_seconds == [10.0, 20.0]
    assert s.slo.min_canary_requests == 50


def test_bad_environment_variable_is_named() -> None:
    with pytest.raises(ConfigError, match=r"slo\.max_error_delta \(from CANARYPILOT_SLO__MAX_ERROR_DELTA\)"):
        load_settings(environ={"CANARYPILOT_SLO__MAX_ERROR_DELTA": "lots"})
    with pytest.raises(ConfigError, match=r"CANARYPILOT_SLO__TYPO.*unknown key"):
        load_settings(environ={"CANARYPILOT_SLO__TYPO": "1"})


def test_secrets_do_not_show_in_the_settings_repr() -> None:
    s = Settings().merged(
        {
            "prometheus": {
                "url": "https://admin:hunter22@prom.example:9090",
                "bearer_token": "tok-abcdef",
                "basic_auth_password": "pw-123456",
                "headers": {"Authorization": "Bearer tok-abcdef", "X-Scope-OrgID": "team-a"},
            }
        }
    )
    text = repr(s)
    for secret in ("hunter22", "tok-abcdef", "pw-123456"):
        assert secret not in text
    assert "prom.example" in text and "team-a" in text


def test_merged_validates_flags() -> None:
    with pytest.raises(ConfigError, match=r"invalid settings \(flags\): query.window"):
        Settings().merged({"query": {"window": "soon"}})


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("5m", 300), ("1h30m", 5400), ("250ms", 0.25)])
def test_durations_read_like_promql(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "m", "5 m", "0s", "-5m", "5m;drop"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def _fields() -> list[tuple[str, str]]:
    out = []
    for section, info in Settings.model_fields.items():
        model = info.annotation
        assert isinstance(model, type) and issubclass(model, BaseModel)
        out.extend((section, name) for name in model.model_fields)
    return out


@pytest.mark.parametrize(("section", "key"), _fields())
def test_every_setting_is_documented_with_its_environment_variable(section: str, key: str) -> None:
    doc = DOC.read_text(encoding="utf-8")
    row = re.search(rf"^\| `{section}\.{key}` \|.*$", doc, re.MULTILINE)
    assert row, f"docs/configuration.md has no table row for `{section}.{key}`"
    variable = f"{ENV_PREFIX}{section.upper()}__{key.upper()}"
    assert f"`{variable}`" in row.group(0), f"the row of {section}.{key} does not name {variable}"
