"""What an /analyze request may ask, checked before anything reaches PromQL.

The same fields arrive as query parameters (GET) or as a JSON object (POST, Argo's
``jsonBody``). Anything unknown, repeated, malformed or out of range is refused with
an ``InvalidRequest`` that names the field, which the app answers with 422: a typo
in an AnalysisTemplate must fail loudly, not fall back to a default.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from canarypilot._exceptions import ConfigError
from canarypilot.model import Target, validate_name
from canarypilot.policy import QueryPolicy

FIELDS = ("service", "canary_version", "stable_version", "weight", "since", "target_weight")


class InvalidRequest(Exception):
    """A field of the request is unknown or malformed; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class AnalyzeRequest:
    """One validated request: which pair of versions, the step being judged (the canary's
    ``weight`` now and, when known, ``since`` when it took it, Unix seconds), and the rung
    the gate is asked about (``target_weight``), if any."""

    target: Target
    target_weight: float | None = None
    weight: float | None = None
    since: float | None = None


def from_query(pairs: Iterable[tuple[str, str]], query: QueryPolicy) -> AnalyzeRequest:
    """Parse GET /analyze's query parameters (each at most once)."""
    fields: dict[str, Any] = {}
    for key, value in pairs:
        if key in fields:
            raise InvalidRequest(_shown(key), f"parameter {_shown(key)!r} is given more than once")
        fields[key] = value
    return _build(fields, query)


def from_body(body: bytes, query: QueryPolicy) -> AnalyzeRequest:
    """Parse POST /analyze's JSON object."""
    try:
        data = json.loads(body) if body.strip() else None
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested too deep
        raise InvalidRequest("body", "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise InvalidRequest("body", 'the body must be a JSON object such as {"service": "payment-api"}')
    return _build(data, query)


def _build(fields: Mapping[str, Any], query: QueryPolicy) -> AnalyzeRequest:
    for key in fields:
        if key not in FIELDS:
            raise InvalidRequest(_shown(key), f"unknown field {_shown(key)!r}; known: {', '.join(FIELDS)}")
    if fields.get("service") is None:
        raise InvalidRequest("service", "field 'service' is required (a string)")
    service = _name(fields, "service", "service name")
    canary = _name(fields, "canary_version", "canary version") or query.canary_version
    stable = _name(fields, "stable_version", "stable version") or query.stable_version
    assert service is not None
    try:
        target = Target(service, canary, stable)
    except ConfigError as exc:
        raise InvalidRequest("canary_version", str(exc)) from None
    weight = _weight(fields.get("weight"), "weight")
    if weight == 0:
        raise InvalidRequest("weight", "weight must be above 0: a canary at 0% has no step to judge")
    return AnalyzeRequest(target, _weight(fields.get("target_weight")), weight, _since(fields.get("since")))


def _name(fields: Mapping[str, Any], key: str, what: str) -> str | None:
    value = fields.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRequest(key, f"{key} must be a string")
    try:
        return validate_name(value, what=what)
    except ConfigError as exc:
        raise InvalidRequest(key, str(exc)) from None


def _weight(value: Any, key: str = "target_weight") -> float | None:
    # Argo's arguments are strings, so "20" is as good as 20; booleans are not numbers.
    if value is None:
        return None
    weight = _number(value, key, f"{key} must be a number from 0 to 100")
    if not 0 <= weight <= 100:
        raise InvalidRequest(key, f"{key} must be a number from 0 to 100")
    return weight


def _since(value: Any) -> float | None:
    """The step's start, Unix seconds (Argo passes "" when the argument is unset)."""
    if value is None or value == "":
        return None
    since = _number(value, "since", "since must be a Unix time in seconds")
    if not 0 < since < 1e11:
        raise InvalidRequest("since", "since must be a Unix time in seconds")
    return since


def _number(value: Any, key: str, message: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidRequest(key, message)
    try:
        number = float(value)
    except (ValueError, OverflowError):  # OverflowError: an integer too large for a float
        raise InvalidRequest(key, message) from None
    if not math.isfinite(number):
        raise InvalidRequest(key, message)
    return number


def _shown(key: str) -> str:
    """A field name safe to echo back: printable and short."""
    text = "".join(ch if ch.isprintable() else "?" for ch in key)
    return text if len(text) <= 40 else text[:40] + "…"
