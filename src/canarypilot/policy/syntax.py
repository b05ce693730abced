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

_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_OPERATOR = re.compile(r"=~|!~|!=|=")
_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}
_NUMERIC_ESCAPES = {"x": (2, 16), "u": (4, 16), "U": (8, 16)}


def label_matchers(text: str) -> list[tuple[str, str, str]]:
    """Parse label matchers (a selector's inside, without braces) into ``(label, operator,
    value)`` triples, or raise ValueError naming the first part it cannot read.

    The syntax is PromQL's: ``label op string``, comma-separated (a trailing comma
    allowed), the string in double quotes, single quotes or backticks, following Go's
    string-literal rules (see :func:`unquote`). Nothing else is accepted, so the text
    can never close the selector's brace and add PromQL of its own. Both the settings'
    ``extra_selector`` and the embedded scraper's matchers are read here.

    >>> label_matchers('namespace="prod", cluster=~"eu-.*", path!=`/tmp`')
    [('namespace', '=', 'prod'), ('cluster', '=~', 'eu-.*'), ('path', '!=', '/tmp')]
    """
    out: list[tuple[str, str, str]] = []
    pos = _skip_space(text, 0)
    while pos < len(text):
        name = _LABEL_NAME.match(text, pos)
        if name is None:
            raise ValueError(
                f"cannot read a label matcher at {text[pos : pos + 30]!r}: "
                'use comma-separated matchers like namespace="prod"'
            )
        pos = _skip_space(text, name.end())
        op = _OPERATOR.match(text, pos)
        if op is None:
            raise ValueError(f"expected =, !=, =~ or !~ after {name.group()!r} at {text[pos : pos + 30]!r}")
        pos = _skip_space(text, op.end())
        value, pos = _string_at(text, pos)
        out.append((name.group(), op.group(), value))
        pos = _skip_space(text, pos)
        if pos < len(text):
            if text[pos] != ",":
                raise ValueError(f"expected a comma at {text[pos : pos + 30]!r}")
            pos = _skip_space(text, pos + 1)
    return out


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\n\r":
        pos += 1
    return pos


def _string_at(text: str, pos: int) -> tuple[str, int]:
    """The string literal starting at ``pos``, unquoted, and the position after it."""
    quote = text[pos : pos + 1]
    if quote not in ('"', "'", "`"):
        raise ValueError(f"expected a quoted string at {text[pos : pos + 30]!r}")
    end = pos + 1
    while end < len(text) and text[end] != quote:
        if text[end] == "\\" and quote != "`":
            end += 1
        end += 1
    if end >= len(text):
        raise ValueError(f"unterminated string {text[pos : pos + 30]!r}")
    return unquote(text[pos : end + 1]), end + 1


def unquote(literal: str) -> str:
    r"""The value of one PromQL string literal, by Go's rules (PromQL's own).

    ``"…"`` and ``'…'`` take the escapes ``\a \b \f \n \r \t \v \\``, their own
    quote (``\"`` only in ``"…"``, ``\'`` only in ``'…'``), octal ``\ooo``, and
    ``\xhh``, ``\uhhhh``, ``\Uhhhhhhhh``; any other escape, or a raw newline, is an
    error. Octal and ``\x`` escapes are bytes, so the result must be valid UTF-8.
    Backticks quote raw text: no escapes, carriage returns dropped.

    >>> unquote(r'"a\tb"'), unquote(r"'it\'s'"), unquote(r'"\u00e9\xc3\xa9"')
    ('a\tb', "it's", 'éé')
    """
    quote, body = literal[:1], literal[1:-1]
    if len(literal) < 2 or literal[-1] != quote or quote not in ('"', "'", "`"):
        raise ValueError(f"{literal[:30]!r} is not a quoted string")
    if quote == "`":
        if "`" in body:
            raise ValueError(f"{literal[:30]!r}: a raw string cannot hold a backtick")
        return body.replace("\r", "")
    out = bytearray()
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\n":
            raise ValueError(f"{literal[:30]!r}: a newline must be written \\n")
        if ch == quote:
            raise ValueError(f"{literal[:30]!r}: an unescaped {quote} inside the string")
        if ch != "\\":
            out += ch.encode()
            i += 1
            continue
        kind = body[i + 1 : i + 2]
        i += 2
        if kind in _SIMPLE_ESCAPES:
            out += _SIMPLE_ESCAPES[kind].encode()
        elif kind == quote:
            out += quote.encode()
        elif kind in _NUMERIC_ESCAPES or kind in "01234567" and kind:
            digits, base = _NUMERIC_ESCAPES.get(kind, (3, 8))
            start = i if kind in _NUMERIC_ESCAPES else i - 1
            code_text = body[start : start + digits]
            if not re.fullmatch(f"[0-7]{{{digits}}}" if base == 8 else f"[0-9a-fA-F]{{{digits}}}", code_text):
                raise ValueError(f"{literal[:30]!r}: a bad escape \\{kind}{code_text}")
            code = int(code_text, base)
            i = start + digits
            if kind in ("u", "U"):
                if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                    raise ValueError(f"{literal[:30]!r}: \\{kind}{code_text} is not a character")
                out += chr(code).encode()
            elif code > 255:
                raise ValueError(f"{literal[:30]!r}: octal escape \\{code_text} is above 255")
            else:
                out.append(code)
        else:
            raise ValueError(f"{literal[:30]!r}: unknown escape \\{kind}")
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{literal[:30]!r} is not valid UTF-8 once unescaped") from None


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
