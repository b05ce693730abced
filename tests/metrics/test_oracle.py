"""Conformance: canarypilot's local PromQL functions against Prometheus' own test scripts.

The scripts (``load``/``eval``/``clear`` blocks) come from Prometheus 2.53.0's Go
module (``promql/promqltest/testdata``, fetched by ``tests.support.gomodules``).
Every ``eval`` whose expression uses ``rate``, ``increase`` or
``histogram_quantile`` is evaluated with ``canarypilot.metrics.promql`` through a
small evaluator of the PromQL those cases need (selectors, offsets, ``sum``/``avg
by``, scalar division). A case needing anything else is skipped with the reason.

Other Prometheus versions' scripts run the same way::

    PROMQL_ORACLE_FILES=/path/a.test:/path/b.test pytest tests/metrics/test_oracle.py -s
    python tests/metrics/test_oracle.py /path/a.test      # prints the summary only
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from canarypilot.metrics import promql
from tests.support.gomodules import ModuleUnavailable, prometheus_testdata

ORACLE_NAMES = ("histograms.test", "functions.test")
TOLERANCE = 1e-6
COVERED = re.compile(r"\b(?<!i)(rate|increase|histogram_quantile)\s*\(")

Labels = tuple[tuple[str, str], ...]


class Unsupported(Exception):
    """The case needs PromQL beyond what canarypilot implements; it is skipped."""


class EvalError(Exception):
    """Evaluation failed the way Prometheus fails (what ``eval_fail`` expects)."""


# --- the script format -------------------------------------------------------------

_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_EXPANSION = re.compile(
    r"(?P<a>[+-]?(?:[\d.]+(?:e[+-]?\d+)?|Inf|NaN))(?:(?P<op>[+-])(?P<b>[\d.]+(?:e[+-]?\d+)?))?x(?P<n>\d+)"
)


def seconds(text: str) -> float:
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise Unsupported(f"duration {text!r}")
    return float(sum(int(n) * _UNITS[u] for n, u in parts))


def expand(tokens: list[str]) -> list[float | None]:
    """Series values: ``a+bxN`` is N+1 values, ``_`` (``_xN``) missing ones, ``stale`` a marker."""
    out: list[float | None] = []
    for token in tokens:
        if token == "_":
            out.append(None)
        elif token.startswith("_x"):
            out.extend([None] * int(token[2:]))
        elif token == "stale":
            out.append(promql.STALE_NAN)
        elif found := _EXPANSION.fullmatch(token):
            value = float(found["a"])
            step = float(found["b"] or 0) * (-1 if found["op"] == "-" else 1)
            for _ in range(int(found["n"]) + 1):
                out.append(value)
                value += step
        else:
            out.append(float(token))
    return out


def split_metric(text: str) -> dict[str, str]:
    """``name{a="b"}`` or ``{__name__="x"}`` as a label dict (the name under ``__name__``)."""
    text = text.strip()
    name, brace, rest = text.partition("{")
    labels: dict[str, str] = {}
    if name.strip():
        labels["__name__"] = name.strip()
    if brace:
        for matcher in promql.parse_matchers(rest.rstrip().removesuffix("}")):
            labels[matcher.name] = matcher.value
    return labels


@dataclass
class Case:
    file: str
    line: int
    at: float
    expr: str
    expect_fail: bool
    expected: list[str]
    data: dict[Labels, list[promql.Sample]] = field(repr=False)

    @property
    def id(self) -> str:
        return f"{self.file}:{self.line}"


def parse_script(path: Path) -> Iterator[Case]:
    """Every ``eval`` of the script, each with the data loaded before it."""
    lines = path.read_text().splitlines()
    data: dict[Labels, list[promql.Sample]] = {}
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        block: list[tuple[int, str]] = []
        j = i + 1
        while j < len(lines) and lines[j].strip():
            if not lines[j].strip().startswith("#"):
                block.append((j + 1, lines[j].strip()))
            j += 1
        if line == "clear":
            data = {}
        elif line.startswith("load "):
            _load(data, seconds(line.split()[1]), [text for _, text in block])
            i = j
            continue
        elif found := re.match(r"(eval\w*) instant at (\S+) (.*)", line):
            command, at, expr = found.groups()
            expected = [] if command == "eval_fail" else [text for _, text in block]
            snapshot = {k: list(v) for k, v in data.items()}
            yield Case(path.name, i + 1, seconds(at), expr, command == "eval_fail", expected, snapshot)
            i = j
            continue
        i += 1


def _load(data: dict[Labels, list[promql.Sample]], interval: float, lines: list[str]) -> None:
    for text in lines:
        if "{{" in text:
            continue  # a native histogram: not what canarypilot's functions cover
        metric, values = re.match(r"(\S*\{[^}]*\}|\S+)\s+(.*)", text).groups()  # type: ignore[union-attr]
        key = tuple(sorted(split_metric(metric).items()))
        samples = data.setdefault(key, [])
        for n, value in enumerate(expand(values.split())):
            if value is not None:
                samples.append((n * interval, value))
        samples.sort(key=lambda s: s[0])


def expected_series(text: str) -> tuple[dict[str, str], float]:
    """An expected result line: ``{a="b"} 0.5`` (the metric name, if any, is dropped)."""
    parts = text.rsplit(None, 1)
    try:
        labels = split_metric(parts[0] if len(parts) == 2 else "")
        value = float(parts[-1])
    except ValueError as exc:
        raise Unsupported(f"expected result {text!r}") from exc
    labels.pop("__name__", None)
    return labels, value


# --- a small evaluator for the PromQL these cases use --------------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<dur>(?:\d+(?:ms|s|m|h|d|w|y))+)(?![\w:])|(?P<num>(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?|NaN|Inf)(?![\w:])|(?P<ident>[A-Za-z_:][\w:]*)"
    r"|(?P<braces>\{(?:[^}\"'`]|\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|`[^`]*`)*\})"
    r"|(?P<range>\[[^\]]*\])|(?P<op>[-+*/^%(),]))"
)
Vector = list[tuple[dict[str, str], float]]


class Evaluator:
    def __init__(self, case: Case) -> None:
        self.data = case.data
        self.at = case.at
        self.tokens = self._tokenize(case.expr)
        self.pos = 0

    @staticmethod
    def _tokenize(expr: str) -> list[tuple[str, str]]:
        tokens, pos = [], 0
        while pos < len(expr.rstrip()):
            found = _TOKEN.match(expr, pos)
            if not found or found.end() == pos:
                raise Unsupported(f"syntax at {expr[pos : pos + 20]!r}")
            kind = found.lastgroup or ""
            tokens.append((kind, found[kind]))
            pos = found.end()
        return tokens

    def run(self) -> Vector | float:
        result = self._expr()
        if self.pos != len(self.tokens):
            raise Unsupported(f"operator or syntax {self.tokens[self.pos][1]!r}")
        return result

    def _peek(self) -> tuple[str, str]:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else ("end", "")

    def _take(self, value: str | None = None) -> tuple[str, str]:
        token = self._peek()
        if value is not None and token[1] != value:
            raise Unsupported(f"expected {value!r}, found {token[1]!r}")
        self.pos += 1
        return token

    def _expr(self) -> Vector | float:
        left = self._term()
        while self._peek()[0] == "op" and self._peek()[1] in "+-*/^%":
            op = self._take()[1]
            right = self._term()
            if op != "/" or not isinstance(left, float) or not isinstance(right, float):
                raise Unsupported(f"binary operator {op!r} on vectors")
            left = promql._div(left, right)
        return left

    def _term(self) -> Vector | float:
        kind, text = self._take()
        if kind == "num":
            return float(text)
        if text in ("-", "+"):
            operand = self._term()
            if not isinstance(operand, float):
                raise Unsupported("unary minus on a vector")
            return -operand if text == "-" else operand
        if text == "(":
            inner = self._expr()
            self._take(")")
            return inner
        if kind == "ident" and text in ("sum", "avg"):
            return self._aggregate(text)
        if kind == "ident" and self._peek()[1] == "(":
            if text not in ("rate", "increase", "histogram_quantile"):
                raise Unsupported(f"{text}() is not implemented by canarypilot")
            return self._call(text)
        if kind in ("ident", "braces"):
            return self._selector(kind, text)
        raise Unsupported(f"syntax {text!r}")

    def _labels_list(self) -> list[str]:
        self._take("(")
        names: list[str] = []
        while self._peek()[1] != ")":
            names.append(self._take()[1])
            if self._peek()[1] == ",":
                self._take()
        self._take(")")
        return names

    def _aggregate(self, how: str) -> Vector:
        by: list[str] = []
        if self._peek()[1] in ("by", "without"):
            by = self._grouping()
        self._take("(")
        inner = self._expr()
        self._take(")")
        if self._peek()[1] in ("by", "without"):
            by = self._grouping()
        if not isinstance(inner, list):
            raise Unsupported("aggregating a scalar")
        names, avg = sorted(by), how == "avg"
        totals = promql.sum_by(inner, names)
        counts: dict[tuple[str, ...], int] = {}
        for labels, _ in inner:
            key = tuple(labels.get(n, "") for n in names)
            counts[key] = counts.get(key, 0) + 1
        return [
            (
                {n: v for n, v in zip(names, key, strict=True) if v},
                total / counts[key] if avg else total,
            )
            for key, total in totals.items()
        ]

    def _grouping(self) -> list[str]:
        if self._take()[1] == "without":
            raise Unsupported("aggregation without (...)")
        return self._labels_list()

    def _call(self, name: str) -> Vector:
        self._take("(")
        if name == "histogram_quantile":
            q = self._expr()
            self._take(",")
        argument = self._expr() if name == "histogram_quantile" else self._matrix()
        self._take(")")
        if name == "histogram_quantile":
            if not isinstance(q, float) or not isinstance(argument, list):
                raise Unsupported("histogram_quantile arguments")
            return self._histogram_quantile(q, argument)
        function = promql.rate if name == "rate" else promql.increase
        out: Vector = []
        for labels, samples, start, end in argument:  # type: ignore[misc]
            value = function(samples, start=start, end=end)
            if value is not None:
                out.append(({k: v for k, v in labels.items() if k != "__name__"}, value))
        return out

    def _histogram_quantile(self, q: float, vector: Vector) -> Vector:
        groups: dict[Labels, list[tuple[float, float]]] = {}
        for labels, value in vector:
            bound = promql.parse_float(labels.get("le", ""))
            if bound is not None:
                key = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
                groups.setdefault(key, []).append((bound, value))
        out: Vector = []
        seen: set[Labels] = set()
        for key, buckets in groups.items():
            labels = {k: v for k, v in key if k != "__name__"}
            identity = tuple(sorted(labels.items()))
            if identity in seen:
                raise EvalError("vector cannot contain metrics with the same labelset")
            seen.add(identity)
            out.append((labels, promql.histogram_quantile(q, buckets)))
        return out

    def _matrix(self) -> list[tuple[dict[str, str], list[promql.Sample], float, float]]:
        kind, text = self._take()
        found = self._select(kind, text)
        range_token = self._take()
        if range_token[0] != "range" or ":" in range_token[1]:
            raise Unsupported("a range function over something else than a range selector")
        width = seconds(range_token[1][1:-1])
        offset = self._offset()
        end = self.at - offset
        return [(labels, samples, end - width, end) for labels, samples in found]

    def _offset(self) -> float:
        if self._peek()[1] != "offset":
            return 0.0
        self._take()
        return seconds(self._take()[1])

    def _selector(self, kind: str, text: str) -> Vector:
        found = self._select(kind, text)
        if self._peek()[0] == "range":
            raise Unsupported("a range vector outside a function")
        offset = self._offset()
        out: Vector = []
        for labels, samples in found:
            newest = promql.latest(samples, at=self.at - offset)
            if newest is not None:
                out.append((labels, newest[1]))
        return out

    def _select(self, kind: str, text: str) -> list[tuple[dict[str, str], list[promql.Sample]]]:
        matchers: list[promql.Matcher] = []
        if kind == "ident":
            matchers.append(promql.Matcher("__name__", "=", text))
            if self._peek()[0] == "braces":
                text = self._take()[1]
                kind = "braces"
        if kind == "braces":
            matchers += promql.parse_matchers(text[1:-1])
        elif kind != "ident":
            raise Unsupported(f"selector {text!r}")
        return [
            (dict(key), samples)
            for key, samples in self.data.items()
            if all(m.matches(dict(key)) for m in matchers)
        ]


# --- running the cases ---------------------------------------------------------------


def close(expected: float, actual: float) -> bool:
    if math.isnan(expected) or math.isnan(actual):
        return math.isnan(expected) and math.isnan(actual)
    if expected == actual:
        return True
    return abs(expected - actual) <= TOLERANCE * max(abs(expected), abs(actual))


def check(case: Case) -> str | None:
    """``None`` when canarypilot agrees with Prometheus, else what differs. Raises Unsupported."""
    try:
        result = Evaluator(case).run()
    except EvalError as exc:
        return None if case.expect_fail else f"failed: {exc}"
    if case.expect_fail:
        return "expected an error, evaluated fine"
    if not isinstance(result, list):
        raise Unsupported("scalar results")
    got = {tuple(sorted(labels.items())): value for labels, value in result}
    want = {
        tuple(sorted(labels.items())): value
        for labels, value in (expected_series(line) for line in case.expected)
    }
    if got.keys() != want.keys():
        return f"series differ: expected {sorted(want)}, got {sorted(got)}"
    wrong = [f"{dict(k)}: expected {want[k]!r}, got {got[k]!r}" for k in want if not close(want[k], got[k])]
    return "; ".join(wrong) or None


def oracle_files() -> list[Path]:
    configured = os.environ.get("PROMQL_ORACLE_FILES")
    if configured:
        return [Path(p) for p in configured.split(":") if p]
    try:
        folder = prometheus_testdata()
    except ModuleUnavailable as exc:
        return [Path(f"<{exc}>") / name for name in ORACLE_NAMES]  # reported as missing
    return [folder / name for name in ORACLE_NAMES]


def covered_cases(files: list[Path]) -> list[Case]:
    return [case for path in files for case in parse_script(path) if COVERED.search(case.expr)]


def run_all(files: list[Path]) -> tuple[list[str], list[str], list[str]]:
    passed, failed, skipped = [], [], []
    for case in covered_cases(files):
        try:
            problem = check(case)
        except Unsupported as exc:
            skipped.append(f"{case.id}: {case.expr}  -- skipped: {exc}")
            continue
        (failed if problem else passed).append(
            f"{case.id}: {case.expr}" + (f"  -- {problem}" if problem else "")
        )
    return passed, failed, skipped


def summary(passed: list[str], failed: list[str], skipped: list[str]) -> str:
    lines = [*(f"FAILED {f}" for f in failed), *(f"SKIPPED {s}" for s in skipped)]
    lines.append(f"{len(passed)} passed, {len(failed)} failed ({len(skipped)} skipped)")
    return "\n".join(lines)


# --- pytest --------------------------------------------------------------------------

_FILES = oracle_files()
_MISSING = [str(p) for p in _FILES if not p.is_file()]
_CASES = [] if _MISSING else covered_cases(_FILES)
needs_oracles = pytest.mark.skipif(
    bool(_MISSING) and "PROMQL_ORACLE_FILES" not in os.environ,
    reason=f"oracle scripts not found: {', '.join(_MISSING)}",
)


def test_script_values_expand_as_prometheus_writes_them() -> None:
    assert expand(["0+10x3"]) == [0, 10, 20, 30]
    assert expand(["5-1x2", "_", "_x2", "7", "1x1"]) == [5, 4, 3, None, None, None, 7, 1, 1]
    [marker] = expand(["stale"])
    assert marker is not None and promql.is_stale(marker)


def test_script_blocks_give_cases_with_their_data(tmp_path: Path) -> None:
    script = tmp_path / "mini.test"
    script.write_text(
        'load 1m\n\tc{a="x"} 0+6x10\n\n# a comment\neval instant at 10m rate(c[10m])\n\t{a="x"} 0.1\n\n'
        "clear\n\neval instant at 10m rate(c[10m])\n"
    )
    first, second = parse_script(script)
    assert first.data and not second.data
    assert check(first) is None
    assert check(second) is None  # no data, and none expected
    first.expected = ['{a="x"} 0.2']
    assert "expected 0.2" in (check(first) or "")


@needs_oracles
def test_oracle_files_exist() -> None:
    assert not _MISSING, f"PROMQL_ORACLE_FILES names missing files: {_MISSING}"
    assert _CASES, "no rate/increase/histogram_quantile case found in the oracle scripts"


@needs_oracles
@pytest.mark.parametrize("case", _CASES, ids=[c.id for c in _CASES])
def test_prometheus_case(case: Case) -> None:
    try:
        problem = check(case)
    except Unsupported as exc:
        pytest.skip(f"{case.expr}: {exc}")
    assert problem is None, f"{case.expr} at {case.at:g}s: {problem}"


@needs_oracles
def test_conformance_summary(capsys: pytest.CaptureFixture[str]) -> None:
    passed, failed, skipped = run_all(_FILES)
    text = summary(passed, failed, skipped)
    with capsys.disabled():
        print(f"\nPromQL oracle conformance ({', '.join(p.name for p in _FILES)}):\n{text}")
    assert not failed, text
    assert passed, "no case ran"


if __name__ == "__main__":
    files = [Path(p) for p in sys.argv[1:]] or oracle_files()
    results = run_all(files)
    print(summary(*results))
    sys.exit(1 if results[1] else 0)
