"""Plain values that cross every layer: what was measured, what was decided.

They are frozen dataclasses so a snapshot or a decision can be logged, cached,
compared and replayed without anyone mutating it on the way.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from canarypilot._exceptions import ConfigError

#: Names of services and versions: what Kubernetes and Prometheus job names look like.
#: Anything else is refused before it can reach a PromQL selector or a config file.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.:\-/]{0,251}[A-Za-z0-9_])?$")


def validate_name(value: str, *, what: str = "name") -> str:
    """Return ``value`` if it is a safe service or version name, else raise ConfigError.

    >>> validate_name("payment-api")
    'payment-api'
    """
    if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value):
        shown = value if isinstance(value, str) and len(value) <= 80 else f"{str(value)[:80]}…"
        raise ConfigError(
            f"invalid {what} {shown!r}: use 1-253 letters, digits and _ . : - /, "
            "starting and ending with a letter or digit"
        )
    return value


class Status(StrEnum):
    """What to do with the canary now."""

    PROCEED = "proceed"
    HOLD = "hold"
    ROLLBACK = "rollback"


@dataclass(frozen=True, slots=True)
class Target:
    """The pair of versions one analysis compares."""

    service: str
    canary_version: str = "v2-canary"
    stable_version: str = "v1-stable"

    def __post_init__(self) -> None:
        validate_name(self.service, what="service name")
        validate_name(self.canary_version, what="canary version")
        validate_name(self.stable_version, what="stable version")
        if self.canary_version == self.stable_version:
            raise ConfigError("the canary and the stable version must differ")


@dataclass(frozen=True, slots=True)
class VersionStats:
    """One version's signals over the analysis window.

    ``None`` means the series is missing: no data, which is never the same as zero.
    """

    version: str
    p99_seconds: float | None = None
    error_rate: float | None = None
    requests: float | None = None
    #: The latency histogram over the window, cumulative ``(upper_bound, count)`` pairs
    #: sorted by bound and ending at ``+Inf``, when the backend returned it. It lets the
    #: evidence count the canary's requests beyond stable's tail (``evidence.py``).
    latency_buckets: tuple[tuple[float, float], ...] | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "p99_seconds": _json_number(self.p99_seconds),
            "error_rate": _json_number(self.error_rate),
            "requests": _json_number(self.requests),
        }


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Both versions measured at one instant over one window.

    ``at`` is the evaluation time (Unix seconds), ``window_seconds`` the length
    of the range the rates cover, ``age_seconds`` how old the newest sample was
    when known (``None`` when the backend does not say).
    """

    target: Target
    stable: VersionStats
    canary: VersionStats
    at: float
    window_seconds: float
    age_seconds: float | None = None


class ViolationKind(StrEnum):
    LATENCY = "latency"
    ERRORS = "errors"


@dataclass(frozen=True, slots=True)
class Violation:
    """One SLO breach: which signal, by how much, and whether it is severe."""

    kind: ViolationKind
    delta: float
    threshold: float
    severe: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    """What the judge concluded from one snapshot.

    ``weight`` is the safe weight for ``proceed``, 0 for ``rollback`` and ``None``
    for ``hold``; ``safe_weight`` is the interpolated weight whenever the deltas
    could be computed, whatever the status.
    """

    status: Status
    weight: float | None
    latency_delta: float | None
    error_delta: float | None
    canary: VersionStats
    stable: VersionStats
    reasons: tuple[str, ...]
    safe_weight: float | None = None
    violations: tuple[Violation, ...] = ()
    target: Target | None = None
    at: float | None = None
    #: The deltas the evidence cannot rule out (upper confidence bounds at ``slo.weight_confidence``):
    #: what ``safe_weight`` was computed from (engine v2; ``None`` from the v1 judge).
    latency_bound: float | None = None
    error_bound: float | None = None
    evidence: StepEvidence | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of ``canarypilot analyze --format json`` and ``/analyze``."""
        out: dict[str, Any] = {
            "status": self.status.value,
            "weight": _json_number(self.weight),
            "safe_weight": _json_number(self.safe_weight),
            "latency_delta": _json_number(self.latency_delta),
            "error_delta": _json_number(self.error_delta),
            "canary": self.canary.to_dict(),
            "stable": self.stable.to_dict(),
            "reasons": list(self.reasons),
            "violations": [
                {
                    "kind": v.kind.value,
                    "delta": _json_number(v.delta),
                    "threshold": v.threshold,
                    "severe": v.severe,
                }
                for v in self.violations
            ],
        }
        if self.target is not None:
            out["service"] = self.target.service
        if self.at is not None:
            out["at"] = self.at
        if self.evidence is not None:
            out["latency_bound"] = _json_number(self.latency_bound)
            out["error_bound"] = _json_number(self.error_bound)
            out["evidence"] = self.evidence.to_dict()
        return out


@dataclass(frozen=True, slots=True)
class SignalTest:
    """One signal's sequential test over the step (``analysis.decide``).

    ``e_value`` is the evidence against "the canary is within the SLO": it rolls back at
    ``1 / alpha``. ``point`` is the delta read from the step's counts, ``bound`` the delta
    the evidence cannot rule out at ``slo.weight_confidence``; ``slices`` and ``requests``
    are what the test counted (after any warm-up). ``beyond``: the counted requests are
    visibly (two standard errors) past what a canary at the limit would show: the canary
    *measures* worse than the SLO, whether or not the test has decided yet.
    """

    kind: ViolationKind
    e_value: float
    rejects: bool
    point: float | None
    bound: float | None
    threshold: float
    slices: int
    requests: float
    basis: str = ""
    beyond: bool = False
    #: The newest slice alone shows the canary visibly past its reference.
    latest_beyond: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "e_value": _json_number(self.e_value),
            "rejects": self.rejects,
            "point": _json_number(self.point),
            "bound": _json_number(self.bound),
            "threshold": self.threshold,
            "slices": self.slices,
            "requests": self.requests,
            "basis": self.basis,
            "beyond": self.beyond,
            "latest_beyond": self.latest_beyond,
        }


@dataclass(frozen=True, slots=True)
class StepEvidence:
    """Both signals' tests for one step, and what was held back as warm-up.

    ``within_slo``: both bounds at or below their thresholds, the canary is shown within
    the SLO at confidence ``slo.weight_confidence``. ``warmup_until`` is the end of the slices held as a
    decaying warm-up (``None``: none held); ``warming_up`` says the excess is still decaying.
    """

    latency: SignalTest | None
    errors: SignalTest | None
    alpha: float
    min_slices: int
    warmup_until: float | None = None
    warming_up: bool = False

    @property
    def within_slo(self) -> bool:
        return all(
            t is not None and t.bound is not None and t.bound <= t.threshold
            for t in (self.latency, self.errors)
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "latency": None if self.latency is None else self.latency.to_dict(),
            "errors": None if self.errors is None else self.errors.to_dict(),
            "alpha": self.alpha,
            "rollback_at_e_value": 1.0 / self.alpha,
            "min_slices": self.min_slices,
            "warmup_until": self.warmup_until,
            "warming_up": self.warming_up,
            "within_slo": self.within_slo,
        }


class Action(StrEnum):
    """What the circuit breaker tells the controller to do."""

    PROCEED = "proceed"
    HOLD = "hold"
    ROLLBACK = "rollback"


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do now: ``analysis.decide``'s answer for one step (or the v1 breaker's).

    ``weight`` is the safe weight for ``proceed`` (the most traffic the evidence supports),
    0 for ``rollback``, ``None`` for ``hold``. The decision behind it carries the deltas,
    their bounds and the evidence.
    """

    action: Action
    weight: float | None
    decision: Decision
    reasons: tuple[str, ...] = field(default=())
    consecutive_violations: int = 0

    @property
    def evidence(self) -> StepEvidence | None:
        return self.decision.evidence


def _json_number(value: float | None) -> float | None:
    """JSON has no NaN or infinity; report those as null rather than emit invalid JSON."""
    if value is None or math.isnan(value) or math.isinf(value):
        return None
    return value


# --- The engine v2 seam (issue 10) -------------------------------------------------------
# The decision is a pure function of what both versions did since the canary's weight last
# changed, cut into time slices. Every provider (Prometheus range queries, the scraper, the
# simulator's store, recorded history) builds a ``StepHistory``; ``analysis.decide`` turns it
# into a ``Verdict``. Because nothing else goes in, the Argo gate (any replica, after any
# restart), the controller, replay and the simulator give the same verdict on the same data.


@dataclass(frozen=True, slots=True)
class SliceCounts:
    """One version's requests in one time slice: counts, not rates.

    ``buckets`` are the latency histogram's cumulative ``(upper_bound, count)`` pairs for
    the slice, sorted by bound and ending at ``+Inf``, or ``None`` when the backend has no
    histogram for it. Counts are increases over the slice (counter resets handled by the
    provider); ``None`` for requests means the series was missing in that slice.
    """

    requests: float | None
    errors: float | None
    buckets: tuple[tuple[float, float], ...] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Slice:
    """Both versions over the same stretch of time ``[start, end)`` (Unix seconds): they saw
    the same moment's load, so comparing them slice by slice cancels noise they share."""

    start: float
    end: float
    stable: SliceCounts
    canary: SliceCounts


@dataclass(frozen=True, slots=True)
class StepHistory:
    """Everything the engine may know about the current step.

    ``weight`` is the canary's weight since ``since`` (the last weight change, Unix seconds);
    ``at`` is the evaluation instant; ``slices`` cover ``[since, at - lag]`` in order, only
    data that had been scraped by ``at``. ``snapshot`` is the same data summed over the step
    (p99s, error rates, request totals) for display and for the safe weight's deltas.
    ``scrape_interval`` is the backend's sampling period, so the engine can tell "no data yet"
    from "no data".
    """

    target: Target
    weight: float
    since: float
    at: float
    slices: tuple[Slice, ...]
    snapshot: Snapshot
    scrape_interval: float = 15.0
