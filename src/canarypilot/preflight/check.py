"""Running the rules over manifests: the one entry point the CLI and library users call."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from canarypilot.preflight import rules as _rules  # noqa: F401  (registers every rule)
from canarypilot.preflight.findings import RULES, Context, Finding, Options, Severity
from canarypilot.preflight.loader import Manifest, load_paths

_ORDER = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.NOTE: 2}


def check(
    manifests: Sequence[Manifest], options: Options | None = None, *, skip: Iterable[str] = ()
) -> list[Finding]:
    """Every finding of every rule (minus ``skip``), ordered by file, line and rule.

    >>> # findings = check(load_paths(["deploy/"]), Options(db_max_connections=500))
    """
    ctx = Context(manifests, options or Options())
    skipped = set(skip)
    found: list[Finding] = []
    for rule_id in sorted(RULES):
        if rule_id not in skipped:
            rule = RULES[rule_id]
            found.extend(rule.check(rule, ctx))
    return sorted(found, key=lambda f: (f.source, f.line, f.rule, _ORDER[f.severity], f.message))


def check_paths(
    paths: Iterable[str | Path], options: Options | None = None, *, skip: Iterable[str] = ()
) -> list[Finding]:
    """Load ``paths`` (files, directories, ``-``) and check them; ConfigError for unreadable input."""
    return check(load_paths(list(paths)), options, skip=skip)


def failed(findings: Iterable[Finding], *, strict: bool = False) -> bool:
    """Whether these findings fail the check: any error, or any warning when ``strict``."""
    failing = {Severity.ERROR, Severity.WARNING} if strict else {Severity.ERROR}
    return any(f.severity in failing for f in findings)
