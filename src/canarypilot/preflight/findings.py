"""What preflight reports and how rules are registered: findings, severities, the rule registry.

A rule is a small function from the loaded manifests to findings, registered
under a stable ID (``CP101``) with the why and the fix a user needs. IDs never
change meaning once released: tools (SARIF viewers, CI annotations, ignore
lists) key on them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from canarypilot.preflight.loader import Manifest


class Severity(StrEnum):
    """``error`` fails the check; ``warning`` fails it with --strict; ``note`` never does."""

    ERROR = "error"
    WARNING = "warning"
    NOTE = "note"


@dataclass(frozen=True, slots=True)
class Options:
    """Facts manifests cannot tell, given by flags (annotations on an object win over these)."""

    drain_timeout_seconds: float | None = None
    db_max_connections: int | None = None
    scrape_interval_seconds: float | None = None
    rate_window_seconds: float = 300.0
    analyzer_timeout_seconds: float = 5.0
    memory_headroom: float = 0.2


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem: which rule, how bad, where (file, line, object, field), and what to do."""

    rule: str
    severity: Severity
    message: str
    source: str
    line: int
    obj: str
    field: str
    why: str
    fix: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "severity": self.severity.value,
            "message": self.message,
            "file": self.source,
            "line": self.line,
            "object": self.obj,
            "field": self.field,
            "why": self.why,
            "fix": self.fix,
        }


@dataclass(frozen=True, slots=True)
class Context:
    """Everything a rule may look at: all manifests (rules may cross-reference) and the options."""

    manifests: Sequence[Manifest]
    options: Options = field(default_factory=Options)

    def of_kind(self, *kinds: str) -> list[Manifest]:
        return [m for m in self.manifests if m.kind in kinds]

    def find(self, kind: str, name: str, namespace: str | None) -> Manifest | None:
        for m in self.manifests:
            if m.kind == kind and m.name == name and (namespace is None or m.namespace in (None, namespace)):
                return m
        return None


Check = Callable[["Rule", Context], Iterable[Finding]]


@dataclass(frozen=True, slots=True)
class Rule:
    """A registered rule: stable ID, default severity, and the text shown with each finding."""

    id: str
    name: str
    severity: Severity
    summary: str
    why: str
    fix: str
    check: Check

    def finding(
        self,
        manifest: Manifest,
        path: Sequence[str | int],
        message: str,
        *,
        severity: Severity | None = None,
        fix: str | None = None,
    ) -> Finding:
        """A finding at ``path`` inside ``manifest`` (the line is the nearest one known)."""
        return Finding(
            rule=self.id,
            severity=severity or self.severity,
            message=message,
            source=manifest.source,
            line=manifest.line(path),
            obj=manifest.ref,
            field=field_path(path),
            why=self.why,
            fix=fix or self.fix,
        )


RULES: dict[str, Rule] = {}


def rule(
    rule_id: str, name: str, severity: Severity, *, summary: str, why: str, fix: str
) -> Callable[[Check], Check]:
    """Register ``check`` under ``rule_id``; IDs are unique."""

    def register(check: Check) -> Check:
        if rule_id in RULES:
            raise ValueError(f"rule {rule_id} registered twice")
        RULES[rule_id] = Rule(rule_id, name, severity, summary, why, fix, check)
        return check

    return register


def field_path(path: Sequence[str | int]) -> str:
    """``("spec", "steps", 3, "setWeight")`` -> ``spec.steps[3].setWeight``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out
