"""The rollout controller: canarypilot drives the traffic router itself.

``RolloutController(spec, metrics=…, router=…).run()`` takes a canary from the
minimum weight to promoted (or rolled back), persisting every step.
"""

from canarypilot.rollout.controller import RolloutController
from canarypilot.rollout.events import (
    Command,
    EventKind,
    Phase,
    RolloutEvent,
    RolloutOutcome,
    RolloutSpec,
)
from canarypilot.rollout.notify import Notification, Notifier, Webhook, WebhookNotifier
from canarypilot.rollout.pacing import WEIGHT_TOLERANCE
from canarypilot.rollout.store import RolloutState, StateStore, read_audit

__all__ = [
    "WEIGHT_TOLERANCE",
    "Command",
    "EventKind",
    "Notification",
    "Notifier",
    "Phase",
    "RolloutController",
    "RolloutEvent",
    "RolloutOutcome",
    "RolloutSpec",
    "RolloutState",
    "StateStore",
    "Webhook",
    "WebhookNotifier",
    "read_audit",
]
