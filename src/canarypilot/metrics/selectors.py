"""Building PromQL from templates without ever pasting a raw label value.

Every value that reaches a selector goes through ``quote`` (a PromQL string
literal) or ``regex_alternation`` (an escaped RE2 alternation inside a quoted
literal); the configured ``extra_selector`` is parsed into matchers and rebuilt
the same way. Templates use ``$name`` placeholders (``string.Template``) so PromQL's
own braces need no escaping.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from string import Template

from canarypilot._exceptions import ConfigError
from canarypilot.policy import QueryPolicy, label_matchers

_RE2_SPECIAL = re.compile(r"([\\.+*?()|\[\]{}^$])")


def quote(value: str) -> str:
    """A PromQL double-quoted string literal holding exactly ``value``.

    >>> quote('a"b\\\\c')
    '"a\\\\"b\\\\\\\\c"'
    """
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{escaped}"'


def regex_alternation(values: Iterable[str]) -> str:
    """A quoted regex matching exactly one of ``values``: ``"a|b\\\\.c"``."""
    parts = sorted({_RE2_SPECIAL.sub(r"\\\1", v) for v in values})
    return quote("|".join(parts))


def selector(policy: QueryPolicy, services: Iterable[str], versions: Iterable[str]) -> str:
    """The label matchers for some services and versions (no surrounding braces)."""
    services = list(services)
    versions = list(versions)
    if len(services) == 1:
        job = f"{policy.job_label}={quote(services[0])}"
    else:
        job = f"{policy.job_label}=~{regex_alternation(services)}"
    version = f"{policy.version_label}=~{regex_alternation(versions)}"
    return ",".join([job, version, *extra_matchers(policy.extra_selector)])


def extra_matchers(text: str) -> list[str]:
    """``extra_selector`` re-rendered matcher by matcher, each value re-quoted.

    The text is parsed, never pasted: ``namespace="prod"}) or vector(1)`` is refused.
    """
    try:
        parsed = label_matchers(text)
    except ValueError as exc:
        raise ConfigError(f"query.extra_selector: {exc}") from None
    return [f"{name}{op}{quote(value)}" for name, op, value in parsed]


def render(template: str, policy: QueryPolicy, *, sel: str, by: str) -> str:
    """Fill a query template; an unknown placeholder is a configuration error."""
    values = {
        "selector": sel,
        "by": by,
        "window": policy.window,
        "quantile": repr(policy.quantile),
        "latency_metric": policy.latency_metric,
        "requests_metric": policy.requests_metric,
        "code_label": policy.code_label,
        "error_code_regex": policy.error_code_regex.replace("\\", "\\\\").replace('"', '\\"'),
        "job_label": policy.job_label,
        "version_label": policy.version_label,
    }
    try:
        return Template(template).substitute(values)
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"query template {template!r} has an unknown placeholder: {exc}") from None
