"""The pure decision engine. No I/O, no clock.

``decide(history, settings) -> Verdict`` is the engine (v2): slices, signals, sequential,
warmup and histogram are its parts, ``interpolate`` the article's safe-weight formula.
``judge``, ``evidence`` and ``breaker`` are engine v1, kept for callers not yet moved.
"""

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
