"""PromQL syntax the settings validate and the metrics layer reuses: durations, query
template placeholders, and the label matchers of ``extra_selector``."""

from __future__ import annotations

import re

#: Placeholders a query template may use; see docs/configuration.md, "Query templates".
TEMPLATE_PLACEHOLDERS = frozenset(
    {
        "selector",
        "by",
        "window",
        "quantile",
        "latency_metric",
        "requests_metric",
        "code_label",
        "error_code_regex",
        "job_label",
        "version_label",
    }
)

# One label matcher: name, operator, double-quoted PromQL string (escapes allowed).
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\\n]|\\.)*)"\s*')
_UNESCAPE = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "'": "'", "\\": "\\"}


def label_matchers(text: str) -> list[tuple[str, str, str]]:
    """Parse ``extra_selector`` into ``(label, operator, value)`` triples, or raise ValueError.

    Only comma-separated ``label op "value"`` matchers are accepted, so the text
    can never close the selector's brace and add PromQL of its own.

    >>> label_matchers('namespace="prod", cluster=~"eu-.*"')
    [('namespace', '=', 'prod'), ('cluster', '=~', 'eu-.*')]
    """
    out: list[tuple[str, str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _MATCHER.match(text, pos)
        if match is None:
            raise ValueError(
                f"cannot read a label matcher at {text[pos : pos + 30]!r}: "
                'use comma-separated matchers like namespace="prod"'
            )
        raw = match.group(3)
        value = re.sub(r"\\(.)", lambda m: _UNESCAPE.get(m.group(1), "\\" + m.group(1)), raw)
        out.append((match.group(1), match.group(2), value))
        pos = match.end()
        if pos < len(text):
            if text[pos] != ",":
                raise ValueError(f"expected a comma at {text[pos : pos + 30]!r}")
            pos += 1
            if not text[pos:].strip():
                raise ValueError("a trailing comma needs a matcher after it")
    return out


def parse_duration(text: str) -> float:
    """Seconds in a PromQL duration such as ``5m``, ``90s``, ``1h30m``.

    >>> parse_duration("1m30s")
    90.0
    """
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    parts = re.findall(r"(\d+)(ms|s|m|h|d|w|y)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"{text!r} is not a duration like 30s, 5m or 1h")
    total = float(sum(int(n) * units[u] for n, u in parts))
    if total <= 0:
        raise ValueError(f"{text!r} must be longer than zero")
    return total
