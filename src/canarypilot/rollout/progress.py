"""What the operator sees while a rollout runs: one line per event that matters.

Plain lines rather than a live panel, so the same output reads well in a
terminal, in CI logs and in ``kubectl logs``: the weight, the deltas, the
breaker's action and when the next analysis is due.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from canarypilot.rollout.events import EventKind, RolloutEvent


def _clock(at: float) -> str:
    return datetime.fromtimestamp(at).strftime("%H:%M:%S")


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{value:+.1%}"


def _points(value: Any) -> str:
    return "n/a" if value is None else f"{value * 100:+.2f} pts"


def describe(event: RolloutEvent) -> str | None:
    """One line for ``event``, or None for events not worth a line."""
    d = event.data
    head = f"{_clock(event.at)}  {event.rollout}  step {event.step}  {event.weight:5.1f}%"
    kind = event.kind
    if kind is EventKind.STARTED:
        pauses = ", ".join(f"{p:g}s" for p in d.get("pauses_seconds", []))
        return f"{head}  started: {d.get('canary')} vs {d.get('stable')}, pauses {pauses}"
    if kind is EventKind.RESUMED:
        return f"{head}  resumed from the state directory"
    if kind is EventKind.RECONCILED:
        return f"{head}  router at {d.get('router_weight'):g}%: {d.get('action')}"
    if kind is EventKind.WAITING:
        return f"{head}  next analysis at {_clock(d['until'])} ({d.get('reason')})"
    if kind is EventKind.ANALYSIS:
        if "error" in d:
            return f"{head}  metrics unavailable: {d['error']}"
        safe = d.get("safe_weight")
        return (
            f"{head}  p99 delta {_pct(d.get('latency_delta'))}, error delta {_points(d.get('error_delta'))}, "
            f"safe weight {'n/a' if safe is None else f'{safe:g}%'} over {d.get('window_seconds', 0):.0f}s"
        )
    if kind is EventKind.VERDICT:
        reasons = d.get("reasons") or []
        return f"{head}  -> {str(d.get('action')).upper()}: {reasons[-1] if reasons else ''}"
    if kind is EventKind.ROUTER:
        return f"{head}  router confirmed {d.get('confirmed'):g}% (asked {d.get('requested'):g}%)"
    if kind is EventKind.ROUTER_FAILED:
        tail = "GAVE UP" if d.get("gave_up") else "retrying"
        return f"{head}  ROUTER FAILED (attempt {d.get('attempt')}, {tail}): {d.get('error')}"
    if kind is EventKind.PHASE:
        reasons = "; ".join(d.get("reasons") or [])
        return f"{head}  phase {event.phase.value.upper()}: {reasons}"
    if kind is EventKind.COMMAND:
        return f"{head}  operator command: {d.get('command')}"
    if kind is EventKind.NOTIFICATION_FAILED:
        return f"{head}  notification failed: {d.get('error')}"
    return None


def printer(write: Callable[[str], None]) -> Callable[[RolloutEvent], None]:
    """An ``on_event`` callback writing ``describe`` lines with ``write``."""

    def on_event(event: RolloutEvent) -> None:
        line = describe(event)
        if line is not None:
            write(line)

    return on_event
