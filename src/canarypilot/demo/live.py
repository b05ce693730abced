"""What the demo shows while it runs: a rich live panel, or plain progress lines.

Both views are fed the controller's events (the same ones the audit log keeps)
and, once a second, the traffic the load generator and the router see. The
plain view (``--no-live``, or when stdout is not a terminal) prints one line per
analysis, verdict, weight change and phase change, so a CI log reads as a story.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import IO, Any, Protocol

from canarypilot.rollout.events import EventKind, RolloutEvent


@dataclass(frozen=True, slots=True)
class Traffic:
    """One sample of what the users and the versions see, taken about once a second."""

    at: float
    weight: float
    stable_rps: float
    canary_rps: float
    sent: int
    failed_ratio: float


class ProgressView(Protocol):
    """Anything that can show a demo run: the live panel, plain lines, or nothing (tests)."""

    def event(self, event: RolloutEvent) -> None: ...

    def traffic(self, sample: Traffic) -> None: ...

    def close(self) -> None: ...


def _ms(value: Any) -> str:
    return "—" if value is None else f"{value * 1000:.1f} ms"


def _pct(value: Any) -> str:
    return "—" if value is None else f"{value:.2%}"


def percent(weight: Any) -> str:
    """A weight as routers report it, to one decimal: HAProxy's 13/256 is 5.1%, not 5.078125%."""
    return "—" if weight is None else f"{round(float(weight), 1):g}%"


def describe(event: RolloutEvent) -> str | None:
    """One line for an event worth showing, or None for the bookkeeping ones."""
    d = event.data
    if event.kind is EventKind.ANALYSIS:
        if "error" in d:
            return f"analysis at {percent(event.weight)}: metrics unavailable ({d['error']})"
        canary, stable = d.get("canary") or {}, d.get("stable") or {}
        ld, ed = d.get("latency_delta"), d.get("error_delta")
        deltas = ""
        if ld is not None and ed is not None:
            deltas = f" (p99 {ld:+.1%}, errors {ed * 100:+.2f} pts)"
        return (
            f"analysis at {percent(event.weight)}: p99 stable {_ms(stable.get('p99_seconds'))} / canary "
            f"{_ms(canary.get('p99_seconds'))}, errors {_pct(stable.get('error_rate'))} / "
            f"{_pct(canary.get('error_rate'))}{deltas} over {d.get('window_seconds', 0):.0f}s"
        )
    if event.kind is EventKind.VERDICT:
        reasons = d.get("reasons") or []
        return (
            f"verdict: {str(d.get('action', '?')).upper()} — {reasons[-1] if reasons else 'no reason given'}"
        )
    if event.kind is EventKind.ROUTER:
        reasons = d.get("reasons") or []
        why = f" ({reasons[-1]})" if reasons else ""
        return f"router: canary weight set to {percent(d.get('confirmed', event.weight))}{why}"
    if event.kind is EventKind.ROUTER_FAILED:
        return f"router change to {d.get('requested')}% failed: {d.get('error')}"
    if event.kind is EventKind.PHASE:
        reasons = d.get("reasons") or []
        return f"rollout {event.phase.value}" + (f": {reasons[-1]}" if reasons else "")
    return None


class PlainView:
    """Plain progress lines, for logs and terminals without a live display."""

    def __init__(self, out: IO[str], *, started: float | None = None) -> None:
        self.out = out
        self.started = started if started is not None else time.time()
        self._last_traffic = 0.0

    def _line(self, at: float, text: str) -> None:
        self.out.write(f"[{at - self.started:6.1f}s] {text}\n")
        self.out.flush()

    def event(self, event: RolloutEvent) -> None:
        text = describe(event)
        if text is not None:
            self._line(event.at, text)

    def traffic(self, sample: Traffic) -> None:
        if sample.at - self._last_traffic >= 10:  # a heartbeat, not a flood
            self._last_traffic = sample.at
            self._line(
                sample.at,
                f"traffic: {sample.stable_rps:.0f} rps stable, {sample.canary_rps:.0f} rps canary "
                f"(weight {percent(sample.weight)}), {sample.failed_ratio:.2%} of user requests failed",
            )

    def close(self) -> None:
        pass


class LiveView:
    """A rich panel redrawn four times a second: weight, p99s, error rates, decisions."""

    def __init__(self, *, title: str, setup: str, console: Any = None, started: float | None = None) -> None:
        from rich.console import Console
        from rich.live import Live

        self.title = title
        self.setup = setup
        self.started = started if started is not None else time.time()
        self.console = console or Console()
        self.analysis: dict[str, Any] = {}
        self.sample: Traffic | None = None
        self.phase = "progressing"
        self.weight = 0.0
        self.step = "0"
        self._steps: int | None = None
        self.lines: deque[tuple[float, str]] = deque(maxlen=12)
        self._live = Live(
            console=self.console, get_renderable=self._render, refresh_per_second=4, transient=False
        )
        self._live.start()

    def event(self, event: RolloutEvent) -> None:
        self.phase = event.phase.value
        pauses = event.data.get("pauses_seconds")
        if pauses is not None:
            self._steps = len(pauses)
        self.step = f"{event.step}/{self._steps or '?'}"
        if event.kind is EventKind.ROUTER:
            self.weight = float(event.data.get("confirmed", event.weight))
        if event.kind is EventKind.ANALYSIS and "error" not in event.data:
            self.analysis = event.data
        text = describe(event)
        if text is not None:
            self.lines.append((event.at, text))

    def traffic(self, sample: Traffic) -> None:
        self.sample = sample

    def close(self) -> None:
        self._live.stop()

    def _render(self) -> Any:
        from rich.console import Group
        from rich.panel import Panel
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        s = self.sample
        weight = self.weight
        head = Table.grid(padding=(0, 2))
        head.add_row(
            f"[bold]weight {weight:5.1f}%[/]",
            ProgressBar(total=100, completed=weight, width=40),
            f"step {self.step}",
            f"[bold]{self.phase}[/]",
            f"{time.time() - self.started:5.0f}s",
        )
        a = self.analysis
        stable, canary = a.get("stable") or {}, a.get("canary") or {}
        ld, ed = a.get("latency_delta"), a.get("error_delta")
        grid = Table(show_header=True, header_style="bold", box=None, padding=(0, 2))
        for name, justify in (("", "left"), ("stable", "right"), ("canary", "right"), ("delta", "right")):
            grid.add_column(name, justify=justify)  # type: ignore[arg-type]
        grid.add_row(
            "p99 latency",
            _ms(stable.get("p99_seconds")),
            _ms(canary.get("p99_seconds")),
            "—" if ld is None else f"{ld:+.1%}",
        )
        grid.add_row(
            "error rate",
            _pct(stable.get("error_rate")),
            _pct(canary.get("error_rate")),
            "—" if ed is None else f"{ed * 100:+.2f} pts",
        )
        if s is not None:
            grid.add_row("traffic now", f"{s.stable_rps:.0f} rps", f"{s.canary_rps:.0f} rps", "")
        log = Table.grid()
        for at, text in self.lines:
            log.add_row(f"[dim]{at - self.started:6.1f}s[/] {text}")
        body = Group(head, "", grid, "", "[bold]decisions[/] (last analysis above)", log)
        return Panel(body, title=self.title, subtitle=self.setup)


class QuietView:
    """Shows nothing; the tests and the library use it."""

    def event(self, event: RolloutEvent) -> None:
        pass

    def traffic(self, sample: Traffic) -> None:
        pass

    def close(self) -> None:
        pass
