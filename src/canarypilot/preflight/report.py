"""Findings as text for people, JSON for scripts, and SARIF 2.1.0 for code-scanning tools."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from canarypilot.preflight.findings import RULES, Finding, Severity

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
DOCS_URL = "https://github.com/canarypilot/canarypilot/blob/main/docs/preflight.md"


def summary(findings: Sequence[Finding], files: int) -> dict[str, int]:
    counts = Counter(f.severity.value for f in findings)
    return {"files": files, "errors": counts["error"], "warnings": counts["warning"], "notes": counts["note"]}


def text(findings: Sequence[Finding], files: int, *, explain: bool = True) -> str:
    """``file:line: CP302 error Rollout ns/name spec.x: message`` then why and fix, once per rule."""
    lines: list[str] = []
    explained: set[str] = set()
    for f in findings:
        lines.append(f"{f.source}:{f.line}: {f.rule} {f.severity.value} {f.obj} {f.field}: {f.message}")
        if explain and f.rule not in explained:
            explained.add(f.rule)
            lines.append(f"    why: {f.why}")
            lines.append(f"    fix: {f.fix}")
    s = summary(findings, files)
    counts = f"{s['errors']} error(s), {s['warnings']} warning(s), {s['notes']} note(s)"
    lines.append(f"{s['files']} file(s) checked: {counts}")
    return "\n".join(lines) + "\n"


def as_json(findings: Sequence[Finding], files: int) -> str:
    return (
        json.dumps(
            {"summary": summary(findings, files), "findings": [f.to_dict() for f in findings]}, indent=2
        )
        + "\n"
    )


def sarif(findings: Sequence[Finding], *, version: str) -> str:
    """A SARIF 2.1.0 log with one run; every rule is described, results point at file and line."""
    ids = sorted(RULES)
    index = {rule_id: i for i, rule_id in enumerate(ids)}
    rules = [
        {
            "id": r.id,
            "name": r.name,
            "shortDescription": {"text": r.summary},
            "fullDescription": {"text": r.why},
            "help": {"text": f"{r.why}\nFix: {r.fix}", "markdown": f"{r.why}\n\n**Fix:** {r.fix}"},
            "helpUri": f"{DOCS_URL}#{r.id.lower()}",
            "defaultConfiguration": {"level": r.severity.value},
        }
        for r in (RULES[i] for i in ids)
    ]
    results: list[dict[str, Any]] = []
    for f in findings:
        results.append(
            {
                "ruleId": f.rule,
                "ruleIndex": index[f.rule],
                "level": f.severity.value,
                "message": {"text": f"{f.obj} {f.field}: {f.message}. Fix: {f.fix}"},
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": {"uri": _uri(f.source)},
                            "region": {"startLine": max(1, f.line)},
                        },
                        "logicalLocations": [{"fullyQualifiedName": f"{f.obj} {f.field}", "kind": "member"}],
                    }
                ],
            }
        )
    log = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "canarypilot preflight",
                        "version": version,
                        "informationUri": DOCS_URL,
                        "rules": rules,
                    }
                },
                "results": results,
            }
        ],
    }
    return json.dumps(log, indent=2) + "\n"


def _uri(source: str) -> str:
    """Relative paths stay relative (SARIF viewers resolve them against the repository)."""
    if source.startswith("<"):
        return source.strip("<>")
    path = Path(source)
    return path.as_uri() if path.is_absolute() else path.as_posix()


__all__ = ["Severity", "as_json", "sarif", "summary", "text"]
