"""The rules of ``analysis.decide``, one by one, on slices of expected counts (no dice)."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
from slicesim import expected_counts, history, steady

from canarypilot.analysis import decide, safe_weight
from canarypilot.analysis.slices import Cleaned, min_slices
from canarypilot.model import Action, Slice, SliceCounts, Status
from canarypilot.policy import Settings

SETTINGS = Settings()


def verdict(slices: list[Slice], settings: Settings = SETTINGS, lag: float = 0.0):
    return decide(history(slices, lag=lag), settings)


def first_rollback(slices: list[Slice], settings: Settings = SETTINGS) -> int | None:
    """The number of slices seen when ``decide`` first says rollback, looking after every slice."""
    for t in range(1, len(slices) + 1):
        if verdict(slices[:t], settings).action is Action.ROLLBACK:
            return t
    return None


def test_no_slice_yet_holds() -> None:
    v = verdict([])
    assert v.action is Action.HOLD and v.weight is None
    assert any("no usable slice" in r for r in v.reasons)


def test_a_missing_canary_series_is_skipped_never_read_as_zero() -> None:
    good = steady(8)
    gap = Slice(good[-1].end, good[-1].end + 15, good[0].stable, SliceCounts(None, None))
    v = verdict([*good, gap])
    assert any("missing or NaN is not zero" in r for r in v.reasons)
    # the gap is the newest slice and the data before it is fresh: the verdict stands on the rest
    assert v.action is Action.PROCEED


def test_nan_requests_or_buckets_never_proceed() -> None:
    nan_requests = [replace(s, canary=SliceCounts(math.nan, 0.0, s.canary.buckets)) for s in steady(8)]
    assert verdict(nan_requests).action is Action.HOLD
    nan_buckets = [
        replace(s, canary=SliceCounts(300.0, 1.5, ((0.1, math.nan), (math.inf, 300.0)))) for s in steady(8)
    ]
    v = verdict(nan_buckets)
    assert v.action is Action.HOLD
    assert any("latency cannot be judged" in r for r in v.reasons)


def test_stale_data_holds_a_healthy_canary() -> None:
    v = verdict(steady(12), lag=SETTINGS.slo.max_sample_age_seconds + 1)
    assert v.action is Action.HOLD
    assert any("stale" in r for r in v.reasons)


def test_a_canary_that_served_nothing_holds() -> None:
    empty = [replace(s, canary=expected_counts(0.0, 0.0, 1.0)) for s in steady(8)]
    v = verdict(empty)
    assert v.action is Action.HOLD
    assert any("served no request" in r for r in v.reasons)


def test_no_verdict_before_the_slices_a_transient_could_fill() -> None:
    awful = steady(10, canary_errors=0.6)
    need = min_slices(Cleaned(tuple(awful), 0.0, (), False), SETTINGS.slo.max_transient_seconds, 15.0)
    assert need == 4
    for t in range(1, need):
        assert verdict(awful[:t]).action is Action.HOLD, t
    assert verdict(awful[:need]).action is Action.ROLLBACK


def test_min_slices_follow_the_slice_length() -> None:
    empty = Cleaned((), 0.0, (), True)
    assert [min_slices(empty, 20.0, s) for s in (5.0, 15.0, 30.0, 60.0)] == [6, 4, 3, 3]
    assert min_slices(empty, 0.0, 15.0) == 1


def test_a_healthy_canary_with_enough_data_proceeds_within_the_slo_at_the_formula_weight() -> None:
    v = verdict(steady(20))
    assert v.action is Action.PROCEED and v.decision.status is Status.PROCEED
    evidence = v.evidence
    assert evidence is not None and evidence.within_slo
    d = v.decision
    assert d.latency_bound is not None and d.error_bound is not None
    assert d.latency_delta is not None and d.error_delta is not None
    # shown within the SLO: the formula on the measured deltas (if more than on the bounds)
    by_bounds = safe_weight(d.latency_bound, d.error_bound)
    assert v.weight == max(by_bounds, safe_weight(d.latency_delta, d.error_delta))


def test_a_canary_not_yet_shown_within_the_slo_gets_the_weight_of_its_bounds() -> None:
    v = verdict(steady(4, canary_n=60.0))
    assert v.action is Action.PROCEED
    assert v.evidence is not None and not v.evidence.within_slo
    d = v.decision
    assert v.weight == safe_weight(d.latency_bound, d.error_bound)  # type: ignore[arg-type]
    assert v.weight is not None and v.weight < 30


def test_a_thin_sample_never_earns_the_weight_of_a_thick_one() -> None:
    # 120 canary requests of a canary identical to stable: about one beyond the p99
    thin = verdict(steady(6, canary_n=20.0)).weight
    thick = verdict(steady(6, canary_n=3000.0)).weight
    assert thin is not None and thick is not None
    assert thin < 30 < thick


def test_errors_at_the_threshold_never_roll_back_and_above_it_do() -> None:
    at_limit = steady(80, canary_errors=0.005 + SETTINGS.slo.max_error_delta)
    assert first_rollback(at_limit) is None
    above = steady(80, canary_errors=0.005 + 0.03)
    found = first_rollback(above)
    assert found is not None and found <= 40


def test_latency_at_the_threshold_never_rolls_back_and_twice_it_does() -> None:
    at_limit = steady(80, canary_factor=1 + SETTINGS.slo.max_latency_delta)
    assert first_rollback(at_limit) is None
    slow = steady(40, canary_factor=1.5)
    found = first_rollback(slow)
    assert found is not None and found <= 20
    assert verdict(slow).decision.violations[0].kind.value == "latency"


def stalled(slices: list[Slice], index: int, *, stable_too: bool) -> list[Slice]:
    """Slice ``index`` with every request of the canary (and of stable) ten times slower."""
    out = list(slices)
    s = out[index]
    canary = expected_counts(s.canary.requests or 0.0, 0.005, 10.0)
    stable = expected_counts(s.stable.requests or 0.0, 0.005, 10.0) if stable_too else s.stable
    out[index] = replace(s, canary=canary, stable=stable)
    return out


def test_a_canary_only_stall_never_rolls_back_and_the_canary_still_proceeds() -> None:
    slices = steady(24)
    for at in (0, 5, 12):
        hit = stalled(
            stalled(stalled(slices, at, stable_too=False), at + 1, stable_too=False), at + 2, stable_too=False
        )
        assert first_rollback(hit) is None, at
        final = verdict(hit)
        assert final.action is Action.PROCEED, final.reasons
        basis = final.decision.evidence.latency.basis  # type: ignore[union-attr]
        assert "transient" in basis or "warm-up" in basis  # the stall is left out of the bound


def test_evidence_leaning_against_the_canary_holds_until_the_test_decides() -> None:
    # 3 points more errors on 300 requests a slice: after 4 slices the test leans, undecided
    v = verdict(steady(4, canary_errors=0.005 + 0.03))
    assert v.action is Action.HOLD
    assert v.evidence is not None and v.evidence.errors is not None
    assert 1 < v.evidence.errors.e_value < 1 / SETTINGS.slo.alpha
    assert any("leans against the canary" in r for r in v.reasons)


def test_a_stall_that_persists_is_a_regression() -> None:
    slices = steady(12)
    for i in range(4, 12):
        slices = stalled(slices, i, stable_too=False)
    assert first_rollback(slices) is not None


def test_a_stall_both_versions_share_is_no_evidence() -> None:
    clean = verdict(steady(10)).evidence
    both = verdict(stalled(steady(10), 6, stable_too=True)).evidence
    assert clean is not None and both is not None and both.latency is not None and clean.latency is not None
    assert both.latency.e_value <= clean.latency.e_value * 1.01


@pytest.mark.parametrize("slices", [10, 20])
def test_stalls_both_versions_share_do_not_widen_the_p99_bound(slices: int) -> None:
    """Stable's p99 is read in the same slices as the canary's: what both felt (a stall every
    fourth slice here) moves both tails together and is no uncertainty of the comparison.
    Read as stable's own uncertainty it held the bound at +70 % (+30 % over 20 slices) and
    the weight at 14.5 %, for two identical versions (end to end: healthy-gc-stalls left
    undecided)."""
    clean = verdict(steady(slices))
    shared = steady(slices)
    for i in range(2, slices, 4):
        shared = stalled(shared, i, stable_too=True)
    both = verdict(shared)
    assert clean.decision.latency_bound is not None and both.decision.latency_bound is not None
    assert both.decision.latency_bound < clean.decision.latency_bound + 0.03
    assert both.action is Action.PROCEED and both.weight == 100.0


def warming(slices: int, magnitude: float, decay: float, seconds: float = 15.0) -> list[Slice]:
    out = steady(slices, seconds=seconds)
    for i, s in enumerate(out):
        factor = 1 + (magnitude - 1) * math.exp(-((s.start + s.end) / 2) / decay)
        out[i] = replace(s, canary=expected_counts(300.0, 0.005, factor))
    return out


@pytest.mark.parametrize("decay", [20.0, 40.0, 60.0])
def test_a_warm_up_that_fades_holds_then_proceeds(decay: float) -> None:
    slices = warming(60, 2.5, decay)
    assert first_rollback(slices) is None
    assert verdict(slices[:3]).action is Action.HOLD
    final = verdict(slices)
    assert final.action is Action.PROCEED, final.reasons
    assert final.evidence is not None and final.evidence.warmup_until is not None


def test_an_excess_that_stops_fading_is_evidence() -> None:
    # starts like a warm-up (2.5x), fades to 1.6x and stays there: a regression
    slices = warming(40, 2.5, 20.0)
    slices = [replace(s, canary=expected_counts(300.0, 0.005, max(1.6, _factor(s)))) for s in slices]
    assert first_rollback(slices) is not None


def _factor(s: Slice) -> float:
    return 1 + 1.5 * math.exp(-((s.start + s.end) / 2) / 20.0)


def test_the_warm_up_allowance_only_delays_a_rollback() -> None:
    slow = steady(40, canary_factor=2.0)
    with_model = first_rollback(slow)
    without = first_rollback(slow, SETTINGS.merged({"slo": {"max_warmup_seconds": 0}}))
    assert with_model is not None and without is not None
    assert without <= with_model


def test_the_verdict_is_a_pure_function_of_the_history() -> None:
    h = history(steady(9, canary_factor=1.3))
    assert decide(h, SETTINGS) == decide(h, SETTINGS)


def test_the_json_keeps_the_v1_keys_and_adds_the_evidence() -> None:
    body = verdict(steady(10)).decision.to_dict()
    for key in (
        "status",
        "weight",
        "safe_weight",
        "latency_delta",
        "error_delta",
        "canary",
        "stable",
        "reasons",
    ):
        assert key in body
    assert {"latency_bound", "error_bound", "evidence"} <= body.keys()
    assert body["evidence"]["rollback_at_e_value"] == pytest.approx(1 / SETTINGS.slo.alpha)
    json.dumps(body, allow_nan=False)


def test_alpha_must_be_a_probability() -> None:
    with pytest.raises(Exception, match="alpha"):
        SETTINGS.merged({"slo": {"alpha": 0.7}})


def test_a_rollback_whose_delta_could_not_be_measured_is_still_valid_json() -> None:
    # Seen in the demo: a latency rejection with no p99 to report (its delta NaN) crashed
    # the controller's audit log instead of rolling back.
    v = verdict(steady(8, canary_errors=0.6))
    assert v.action is Action.ROLLBACK
    broken = replace(v.decision, violations=tuple(replace(x, delta=math.nan) for x in v.decision.violations))
    encoded = json.loads(json.dumps(broken.to_dict(), allow_nan=False))
    assert encoded["violations"][0]["delta"] is None


def test_a_canary_measured_past_its_limit_holds_until_the_test_decides() -> None:
    # +3.5 points of errors (limit +2): more than the noise, not yet enough for the test.
    v = verdict(steady(5, canary_errors=0.04))
    assert v.action is Action.HOLD
    assert v.decision.evidence is not None and v.decision.evidence.errors is not None
    assert v.decision.evidence.errors.beyond and not v.decision.evidence.errors.rejects
    assert any("error delta +3.50 points is beyond its limit" in r for r in v.reasons), v.reasons
    # the same canary at the stable's error rate is not held by that rule
    within = verdict(steady(5))
    assert not any("is beyond its limit" in r for r in within.reasons)


def test_a_regression_in_the_newest_slice_alone_holds_the_weight_for_one_slice() -> None:
    # Eight healthy slices, then one where the canary turned twice as slow: the test has one
    # slice of it (no verdict yet), and a weight increase now would carry the regression up.
    healthy = steady(8)
    assert verdict(healthy).action is Action.PROCEED
    turned = [*healthy[:-1], replace(healthy[-1], canary=expected_counts(300.0, 0.005, 2.0))]
    v = verdict(turned)
    assert v.action is Action.HOLD
    assert v.decision.evidence is not None and v.decision.evidence.latency is not None
    assert v.decision.evidence.latency.latest_beyond
    assert any("newest slice's p99 reading is visibly past its reference" in r for r in v.reasons), v.reasons
    # the same slice among the older ones, followed by a healthy one, no longer holds by that rule
    later = [*turned, steady(9)[-1]]
    assert not any("newest slice" in r for r in verdict(later).reasons)
