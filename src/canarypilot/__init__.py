"""canarypilot: how much traffic can this canary safely take?

The public API. Everything listed in ``__all__`` is stable; other modules are
importable but may change. Names are loaded on first use so that the command
line starts fast (``import canarypilot`` does not load pydantic or httpx).

>>> import canarypilot
>>> canarypilot.Status.PROCEED.value
'proceed'
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from canarypilot._version import __version__ as __version__

_EXPORTS = {
    "Action": "canarypilot.model",
    "CanaryFailed": "canarypilot._exceptions",
    "CanaryPilotError": "canarypilot._exceptions",
    "Clock": "canarypilot.clock",
    "ConfigError": "canarypilot._exceptions",
    "Decision": "canarypilot.model",
    "FakeClock": "canarypilot.clock",
    "MetricsProvider": "canarypilot.metrics.base",
    "MetricsUnavailable": "canarypilot._exceptions",
    "PermanentError": "canarypilot._exceptions",
    "QueryError": "canarypilot._exceptions",
    "RecordingRouter": "canarypilot.routing.recording",
    "Router": "canarypilot.routing.base",
    "RouterError": "canarypilot._exceptions",
    "RouterUnavailable": "canarypilot._exceptions",
    "Settings": "canarypilot.policy",
    "Snapshot": "canarypilot.model",
    "StateError": "canarypilot._exceptions",
    "StaticMetrics": "canarypilot.metrics.static",
    "Status": "canarypilot.model",
    "SystemClock": "canarypilot.clock",
    "Target": "canarypilot.model",
    "TemporaryError": "canarypilot._exceptions",
    "Verdict": "canarypilot.model",
    "VersionStats": "canarypilot.model",
    "Violation": "canarypilot.model",
    "ViolationKind": "canarypilot.model",
    "analyze": "canarypilot.api",
    "decide": "canarypilot.api",
    "judge": "canarypilot.analysis.judge",
    "load_settings": "canarypilot.policy",
    "safe_weight": "canarypilot.analysis.interpolate",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'canarypilot' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from canarypilot._exceptions import (
        CanaryFailed,
        CanaryPilotError,
        ConfigError,
        MetricsUnavailable,
        PermanentError,
        QueryError,
        RouterError,
        RouterUnavailable,
        StateError,
        TemporaryError,
    )
    from canarypilot.analysis.interpolate import safe_weight
    from canarypilot.analysis.judge import judge
    from canarypilot.api import analyze, decide
    from canarypilot.clock import Clock, FakeClock, SystemClock
    from canarypilot.metrics.base import MetricsProvider
    from canarypilot.metrics.static import StaticMetrics
    from canarypilot.model import (
        Action,
        Decision,
        Snapshot,
        Status,
        Target,
        Verdict,
        VersionStats,
        Violation,
        ViolationKind,
    )
    from canarypilot.policy import Settings, load_settings
    from canarypilot.routing.base import Router
    from canarypilot.routing.recording import RecordingRouter
