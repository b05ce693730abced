"""The safe-weight formula: latency and error deltas in, a traffic weight out.

This is the article's ``interpolateWeight`` kept exactly, with two fixes the
article lacked: the result is clamped to ``[min_weight, max_weight]`` (a faster
canary gives ``max_weight``, never more), and the constants are policy settings.
"""

from __future__ import annotations

import math

from canarypilot.policy import InterpolationPolicy

_DEFAULT = InterpolationPolicy()


def round_half_away(value: float, digits: int = 1) -> float:
    """Round like Go's ``math.Round(x*10)/10``: halves go away from zero.

    Python's ``round`` rounds halves to even; the article's Go code does not.

    >>> round_half_away(52.25), round_half_away(-0.25)
    (52.3, -0.3)
    """
    scale = 10.0**digits
    scaled = value * scale
    whole = math.trunc(scaled)
    if abs(scaled - whole) >= 0.5:
        whole += int(math.copysign(1, scaled))
    return whole / scale


def safety_factor(latency_delta: float, error_delta: float, policy: InterpolationPolicy = _DEFAULT) -> float:
    """``max(floor, exp(-k*latency_delta) * max(error_floor, 1 - s*error_delta))``."""
    try:
        latency_penalty = math.exp(-policy.latency_decay * latency_delta)
    except OverflowError:
        latency_penalty = math.inf
    error_penalty = max(policy.error_floor, 1.0 - policy.error_slope * error_delta)
    return max(policy.safety_floor, latency_penalty * error_penalty)


def safe_weight(latency_delta: float, error_delta: float, policy: InterpolationPolicy = _DEFAULT) -> float:
    """The weight (percent) a canary with these deltas may take.

    >>> safe_weight(0.0, 0.0)
    100.0
    >>> safe_weight(0.05, 0.0)
    62.6
    >>> safe_weight(-0.3, 0.0)    # faster than stable: capped, not 2000%
    100.0
    """
    if math.isnan(latency_delta) or math.isnan(error_delta):
        raise ValueError("deltas must be numbers, not NaN")
    factor = safety_factor(latency_delta, error_delta, policy)
    span = policy.max_weight - policy.min_weight
    weight = policy.max_weight if math.isinf(factor) else policy.min_weight + factor * span
    weight = round_half_away(weight, 1)
    return min(policy.max_weight, max(policy.min_weight, weight))
