"""One analysis window of scraping, for commands that run once (``canarypilot analyze``).

Without Prometheus there is no history: the rates a decision needs only exist
after the versions' /metrics pages were read at least twice, a window apart.
This module scrapes every target at the window's start, every
``scrape.interval_seconds`` after, and once more at its end, so the local
``rate()`` and ``increase()`` see the whole window. It shows how far it got on
stderr when that is a terminal, and reports targets that failed.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from canarypilot._exceptions import ConfigError, MetricsUnavailable

#: A one-off scrape longer than this is a job for Prometheus, not for a waiting command.
MAX_WINDOW_SECONDS = 600.0


def check_window(settings: Any) -> tuple[float, float]:
    """The window and the interval, or ``ConfigError`` when they cannot make a decision."""
    window = float(settings.query.window_seconds)
    interval = float(settings.scrape.interval_seconds)
    if window > MAX_WINDOW_SECONDS:
        raise ConfigError(
            f"--window {settings.query.window} is too long to scrape while you wait "
            f"(at most {MAX_WINDOW_SECONDS / 60:g}m); use Prometheus for longer windows"
        )
    if 2 * interval > window:
        raise ConfigError(
            f"--window {settings.query.window} holds fewer than two scrapes every {interval:g}s: "
            "lower --scrape-interval (scrape.interval_seconds) or widen --window"
        )
    return window, interval


@asynccontextmanager
async def scrape_window(settings: Any, *, service: str, progress: bool = False) -> AsyncIterator[Any]:
    """A ``ScrapeMetrics`` that has scraped for one ``query.window``; closed on exit.

    Raises ``MetricsUnavailable`` when no target answered a single scrape.
    """
    from canarypilot.metrics.scrape import ScrapeMetrics

    window, interval = check_window(settings)
    provider = ScrapeMetrics.from_settings(settings, service=service)
    quiet = logging.getLogger("canarypilot.metrics.scrape")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # failures are summed up below, once per target
    try:
        clock = provider.clock
        start = clock.now()
        rounds = 0
        while True:
            await provider.scrape_once()
            rounds += 1
            elapsed = clock.now() - start
            if progress:
                _show(f"scraping {len(provider.targets)} targets: {min(elapsed, window):.0f}s of {window:g}s")
            if elapsed >= window:
                break
            await clock.sleep(min(start + rounds * interval, start + window) - clock.now())
        if progress:
            _show("", end="\n")
        _report_failures(provider)
        if not any(t.failures < t.scrapes for t in provider.targets):
            raise MetricsUnavailable("no scrape target answered: " + _first_error(provider))
        yield provider
    finally:
        quiet.setLevel(level)
        await provider.aclose()


def _show(text: str, *, end: str = "") -> None:
    sys.stderr.write(f"\r\033[K{text}{end}")
    sys.stderr.flush()


def _report_failures(provider: Any) -> None:
    for t in provider.targets:
        if t.failures:
            sys.stderr.write(
                f"canarypilot: warning: {t.version} at {t.url}: {t.failures} of {t.scrapes} scrapes "
                f"failed (last: {t.last_error or 'recovered'})\n"
            )


def _first_error(provider: Any) -> str:
    return next((f"{t.url}: {t.last_error}" for t in provider.targets if t.last_error), "unknown")
