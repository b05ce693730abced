"""The label-matcher parser reads strings as a real Prometheus does (issue 12, defect 10).

Each literal is handed to Prometheus inside ``label_replace(vector(1), "v", LITERAL,
"", "")``: Prometheus answers with a series whose label ``v`` holds the string it
parsed, or refuses the query. ``policy.syntax.unquote`` must agree on both: the same
value, or an error.

One difference is deliberate: escapes that spell bytes which are not UTF-8
(``"\\xff"``) Prometheus keeps as raw bytes; canarypilot refuses them, as a Python
string cannot hold them and the selector could not be sent back unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from canarypilot.local.prometheus import LocalPrometheus
from canarypilot.policy.syntax import unquote

pytestmark = pytest.mark.integration

LITERALS = [
    r'"plain"',
    r"'single'",
    r"`raw \n stays`",
    r'"tab\tnew\nline"',
    r'"bell\a back\b feed\f vert\v cr\r"',
    r'"quote \" and backslash \\"',
    r"'it\'s'",
    r'"it\'s"',  # \' only in single quotes
    r"'say \"hi\"'",  # \" only in double quotes
    r'"\x41\102\u00e9\U0001F600"',
    r'"\xc3\xa9"',  # two bytes, one character
    r'"\400"',  # octal above 255
    r'"\q"',  # no such escape
    r'"\u12"',  # too few digits
    r'"\ud800"',  # a surrogate is not a character
    r'"x\"',  # unterminated
]


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir: Path = tmp_path_factory.mktemp("promql-strings")
    with LocalPrometheus(workdir) as prom:
        yield prom.url


def prometheus_reads(url: str, literal: str) -> str | None:
    """The string Prometheus parsed from ``literal``, or None when it refuses it."""
    query = f'label_replace(vector(1), "v", {literal}, "", "")'
    answer = httpx.get(f"{url}/api/v1/query", params={"query": query}, timeout=10)
    if answer.status_code == 400:
        return None
    answer.raise_for_status()
    result = answer.json()["data"]["result"]
    return str(result[0]["metric"].get("v", "")) if result else ""


@pytest.mark.parametrize("literal", LITERALS)
def test_unquote_agrees_with_prometheus(prometheus: str, literal: str) -> None:
    theirs = prometheus_reads(prometheus, literal)
    try:
        ours: str | None = unquote(literal)
    except ValueError:
        ours = None
    assert ours == theirs, f"{literal}: Prometheus read {theirs!r}, canarypilot {ours!r}"


def test_bytes_that_are_not_utf8_are_refused_though_prometheus_keeps_them(prometheus: str) -> None:
    assert prometheus_reads(prometheus, r'"\xff"') is not None
    with pytest.raises(ValueError, match="not valid UTF-8"):
        unquote(r'"\xff"')
