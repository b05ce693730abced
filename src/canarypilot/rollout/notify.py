"""Telling people: webhook notifications of phase and weight changes.

A notification is fire-and-forget from the controller's point of view: it is
sent in a background task after the router action it reports, with a short
timeout, so a slow or failing webhook can never delay a rollback. Failures are
reported back as events, never raised into the controller.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, runtime_checkable

import httpx

from canarypilot._exceptions import TemporaryError


@dataclass(frozen=True, slots=True)
class Notification:
    """What a webhook receives (as JSON): name, phase, weight, reasons, timestamp."""

    name: str
    phase: str
    weight: float
    reasons: tuple[str, ...]
    timestamp: float

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "phase": self.phase,
            "weight": self.weight,
            "reasons": list(self.reasons),
            "timestamp": datetime.fromtimestamp(self.timestamp, UTC).isoformat(),
        }

    def to_slack(self) -> dict[str, Any]:
        """Slack's incoming-webhook shape: a ``text`` field (mrkdwn)."""
        lines = [f"*canarypilot* rollout `{self.name}`: *{self.phase}* at {self.weight:g}% canary"]
        lines += [f"• {reason}" for reason in self.reasons[:5]]
        return {"text": "\n".join(lines)}


@runtime_checkable
class Notifier(Protocol):
    """Delivers one notification; raises ``TemporaryError`` when it could not."""

    async def notify(self, notification: Notification) -> None: ...


@dataclass(frozen=True, slots=True)
class Webhook:
    """One endpoint. ``format="slack"`` sends Slack's ``{"text": …}`` body."""

    url: str
    format: Literal["json", "slack"] = "json"


class WebhookNotifier:
    """POSTs each notification to every webhook; reports the first failure.

    >>> notifier = WebhookNotifier([Webhook("https://hooks.example/canary")])
    >>> # await notifier.notify(Notification("api", "promoted", 100, (), time.time()))
    """

    def __init__(
        self,
        webhooks: Sequence[Webhook],
        *,
        timeout_seconds: float = 2.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.webhooks = list(webhooks)
        self.timeout_seconds = timeout_seconds
        self._transport = transport

    async def notify(self, notification: Notification) -> None:
        failures: list[str] = []
        async with httpx.AsyncClient(timeout=self.timeout_seconds, transport=self._transport) as client:
            for hook in self.webhooks:
                body = notification.to_slack() if hook.format == "slack" else notification.to_json()
                try:
                    response = await client.post(hook.url, json=body)
                except httpx.HTTPError as exc:
                    failures.append(f"{_shown(hook.url)}: {type(exc).__name__}")
                    continue
                if response.status_code >= 300:
                    failures.append(f"{_shown(hook.url)}: HTTP {response.status_code}")
        if failures:
            raise TemporaryError("webhook failed: " + "; ".join(failures))


def _shown(url: str) -> str:
    # Webhook URLs often carry a secret in the path (Slack); show only scheme and host.
    parsed = httpx.URL(url)
    return f"{parsed.scheme}://{parsed.host}/…"
