"""PromQL built from templates: hostile label values stay inside their string literals."""

from __future__ import annotations

import pytest

from canarypilot import ConfigError, Target
from canarypilot.metrics.selectors import extra_matchers, quote, regex_alternation, render, selector
from canarypilot.policy import QueryPolicy, label_matchers


def unquote(literal: str) -> str:
    """Read a PromQL double-quoted literal back, as Prometheus' lexer would."""
    assert literal[0] == literal[-1] == '"'
    out, i, body = [], 0, literal[1:-1]
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            nxt = body[i + 1]
            out.append({"n": "\n", "r": "\r", "\\": "\\", '"': '"'}[nxt])
            i += 2
            continue
        assert ch != '"', f"unescaped quote ends the literal early: {literal}"
        out.append(ch)
        i += 1
    return "".join(out)


@pytest.mark.parametrize("value", ['a"b', "a\\b", 'x"}) or vector(1) or foo{a="', "line\nbreak", "plain"])
def test_quote_round_trips_every_value(value: str) -> None:
    assert unquote(quote(value)) == value


def test_regex_alternation_escapes_metacharacters() -> None:
    # In PromQL "a\\.b" is the RE2 pattern a\.b: a literal dot, not "any character".
    assert regex_alternation(["a.b", "c"]) == '"a\\\\.b|c"'
    assert unquote(regex_alternation(["v1+x", "(y)"])) == r"\(y\)|v1\+x"


def test_selector_for_one_service_uses_an_exact_match() -> None:
    assert selector(QueryPolicy(), ["checkout"], ["v1-stable", "v2-canary"]) == (
        'job="checkout",version=~"v1-stable|v2-canary"'
    )


def test_selector_for_many_services_uses_an_escaped_alternation() -> None:
    assert selector(QueryPolicy(), ["a.b", "c"], ["v1"]).startswith('job=~"a\\\\.b|c"')


def test_extra_selector_is_rebuilt_matcher_by_matcher() -> None:
    policy = QueryPolicy(extra_selector=' namespace="prod" , cluster=~"eu-.*",zone!="x\\"y"')
    assert selector(policy, ["api"], ["v1"]).split(",")[2:] == [
        'namespace="prod"',
        'cluster=~"eu-.*"',
        'zone!="x\\"y"',
    ]


@pytest.mark.parametrize(
    "hostile",
    [
        'namespace="prod"} or vector(1) or up{a="b"',
        'namespace="prod"}) or vector(1',
        "namespace=prod",
        'namespace="prod" cluster="x"',
        '"prod"',
        '1abc="x"',
        'a="unterminated',
    ],
)
def test_extra_selector_that_could_break_out_is_refused(hostile: str) -> None:
    with pytest.raises(ValueError):
        label_matchers(hostile)
    with pytest.raises(ConfigError, match="extra_selector"):
        extra_matchers(hostile)


def test_extra_selector_is_validated_when_settings_load() -> None:
    with pytest.raises(ValueError, match="extra_selector"):
        QueryPolicy(extra_selector='a="b"} or vector(1)')


def test_hostile_service_name_never_reaches_promql() -> None:
    with pytest.raises(ConfigError, match="invalid service name"):
        Target('a"}or vector(1)')


def test_render_fills_placeholders_and_escapes_the_error_regex() -> None:
    policy = QueryPolicy(error_code_regex='5..|4"29')
    text = render(policy.errors_template, policy, sel='job="a"', by="job, version")
    assert text == ('sum by (job, version) (increase(http_requests_total{job="a",code=~"5..|4\\"29"}[5m]))')


def test_template_with_an_unknown_placeholder_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match=r"\$selectr"):
        QueryPolicy(latency_template="histogram_quantile(0.99, rate(x{$selectr}[$window]))")


def test_template_override_is_used_verbatim_with_placeholders_filled() -> None:
    policy = QueryPolicy(requests_template="sum by ($by) (rate($requests_metric{$selector}[$window])) * 300")
    text = render(policy.requests_template, policy, sel='job="a"', by="job")
    assert text == 'sum by (job) (rate(http_requests_total{job="a"}[5m])) * 300'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('zone="x\\ay"', [("zone", "=", "x\ay")]),  # Go's \a is the bell character
        ("zone='eu-1'", [("zone", "=", "eu-1")]),
        ("path=`C:\\dir`", [("path", "=", "C:\\dir")]),  # raw: no escapes
        ('name="caf\\u00e9", k="\\x41\\101"', [("name", "=", "caf\u00e9"), ("k", "=", "AA")]),
        ('quote=\'say "hi"\', other="it\'s"', [("quote", "=", 'say "hi"'), ("other", "=", "it's")]),
        ('namespace="prod",', [("namespace", "=", "prod")]),  # PromQL allows a trailing comma
    ],
)
def test_one_parser_reads_extra_selector_for_prometheus_and_the_scraper_alike(
    text: str, expected: list[tuple[str, str, str]]
) -> None:
    # Issue 12, defect 10: the two paths once read zone="x\ay" differently and only one
    # took single quotes. Both now go through policy.label_matchers.
    from canarypilot.metrics.promql import parse_matchers

    assert label_matchers(text) == expected
    assert [(m.name, m.op, m.value) for m in parse_matchers(text)] == expected
    rebuilt = ",".join(extra_matchers(text))
    assert label_matchers(rebuilt) == expected, "what Prometheus is sent reads back the same"


@pytest.mark.parametrize(
    "text",
    ['a="\\q"', "a='\\\"'", 'a="\\400"', 'a="\\xff"', 'a="\\ud800"', 'a="line\nbreak"', 'a="x\\'],
)
def test_strings_outside_promqls_rules_are_refused_on_both_paths(text: str) -> None:
    from canarypilot.metrics.promql import parse_matchers

    with pytest.raises(ValueError):
        label_matchers(text)
    with pytest.raises(ValueError):
        parse_matchers(text)
