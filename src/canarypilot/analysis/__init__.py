"""The pure decision engine: interpolation, judge, circuit breaker. No I/O, no clock."""

from canarypilot.analysis.breaker import BreakerState, assess, assess_outage
from canarypilot.analysis.interpolate import round_half_away, safe_weight, safety_factor
from canarypilot.analysis.judge import hold_reasons, judge

__all__ = [
    "BreakerState",
    "assess",
    "assess_outage",
    "hold_reasons",
    "judge",
    "round_half_away",
    "safe_weight",
    "safety_factor",
]
