"""The pure decision engine: interpolation, judge, evidence, circuit breaker. No I/O, no clock."""

from canarypilot.analysis.breaker import BreakerState, assess, assess_outage
from canarypilot.analysis.decide import decide
from canarypilot.analysis.evidence import Evidence, SignalEvidence, error_evidence, latency_evidence, weigh
from canarypilot.analysis.interpolate import round_half_away, safe_weight, safety_factor
from canarypilot.analysis.judge import hold_reasons, judge

__all__ = [
    "BreakerState",
    "Evidence",
    "SignalEvidence",
    "assess",
    "assess_outage",
    "decide",
    "error_evidence",
    "hold_reasons",
    "judge",
    "latency_evidence",
    "round_half_away",
    "safe_weight",
    "safety_factor",
    "weigh",
]
