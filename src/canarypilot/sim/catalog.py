"""Every strategy the simulator can run, by name."""

from __future__ import annotations

from collections.abc import Callable

from canarypilot._exceptions import ConfigError
from canarypilot.sim.argo import ArgoGate
from canarypilot.sim.oracle import Oracle
from canarypilot.sim.strategies import CanaryPilot, FlaggerAnalysis, StaticLadder, Strategy

STRATEGIES: dict[str, Callable[[], Strategy]] = {
    "static": StaticLadder,
    "flagger": FlaggerAnalysis,
    "canarypilot": CanaryPilot,
    "argo": ArgoGate,
    "oracle": Oracle,
}


def make_strategy(name: str) -> Strategy:
    """The strategy called ``name``; ``ConfigError`` naming the known ones otherwise."""
    try:
        return STRATEGIES[name]()
    except KeyError:
        raise ConfigError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}") from None
