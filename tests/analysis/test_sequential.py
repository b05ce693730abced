"""The pieces under ``decide``: the betting outcome, its cap, the histogram readings, the warm-up.

Exact computations where the claim is about an expectation (binomial sums, not dice).
"""

from __future__ import annotations

import math

import pytest

from canarypilot.analysis import histogram as hist
from canarypilot.analysis.sequential import (
    GAMBLERS,
    RATIOS,
    STAKES,
    Bet,
    SliceObservation,
    bet,
    excess,
    log_e_value,
    log_wealth_prefixes,
    rate_cap,
    slice_cap,
)
from canarypilot.analysis.signals import dispersion
from canarypilot.analysis.warmup import allowances


def _binomial_mean(n: int, r: float, f) -> float:
    def pmf(k: int) -> float:
        log = math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
        return math.exp(log + k * math.log(r) + (n - k) * math.log1p(-r))

    return sum(pmf(k) * f(k) for k in range(n + 1))


@pytest.mark.parametrize(("n", "r"), [(20, 0.01), (75, 0.0066), (300, 0.03), (1500, 0.01), (2000, 0.05)])
def test_a_canary_at_the_reference_does_not_win_the_bet_on_average(n: int, r: float) -> None:
    cap = slice_cap(0.01, 4)
    mean = _binomial_mean(n, r, lambda k: excess(SliceObservation(k, n, r), cap))
    # the floor at -3 standard errors may lift the mean a hair, never more
    assert mean <= 2e-4


@pytest.mark.parametrize(("n", "r"), [(20, 0.01), (300, 0.03), (1500, 0.01)])
def test_every_outcome_keeps_every_gambler_solvent(n: int, r: float) -> None:
    cap = slice_cap(0.01, 4)
    for k in range(n + 1):
        u = excess(SliceObservation(k, n, r), cap)
        assert -1.0 <= u <= cap
        assert all(1 + lam * u > 0 for lam in STAKES)


@pytest.mark.parametrize("need", [1, 2, 3, 4, 5, 6, 7, 8])
def test_need_capped_slices_reach_one_over_alpha_and_one_fewer_never_do(need: int) -> None:
    alpha = 0.01
    cap = slice_cap(alpha, need)
    top = rate_cap(alpha, need)
    worst = bet(SliceObservation(3000, 3000, 0.01), cap, top)  # every request counts against the canary
    assert max(worst.multipliers[len(STAKES) :]) == pytest.approx(top)
    linear = Bet(cap, tuple(1 + lam * cap for lam in STAKES) * 2)  # the linear gamblers alone
    rates = Bet(0.0, (1.0,) * len(STAKES) + (top,) * len(RATIOS))  # the rate gamblers alone
    everyone = Bet(cap, linear.multipliers[: len(STAKES)] + (top,) * len(RATIOS))
    for bets in ([linear] * need, [rates] * need, [everyone] * need):
        prefixes = log_wealth_prefixes(bets)
        assert log_e_value(prefixes, 0, need) >= math.log(1 / alpha) - 1e-9
        if need > 1:
            assert log_e_value(prefixes, 0, need - 1) < math.log(1 / alpha)


@pytest.mark.parametrize(("n", "r"), [(20, 0.01), (75, 0.0066), (300, 0.03), (1500, 0.01)])
def test_a_canary_at_the_reference_does_not_win_the_rate_bets_on_average(n: int, r: float) -> None:
    cap, top = slice_cap(0.01, 3), rate_cap(0.01, 3)

    def paid(k: int, g: int, spread: float) -> float:
        return bet(SliceObservation(k, n, r), cap, top, spread=spread).multipliers[g]

    for g in range(len(STAKES), GAMBLERS):
        # as read, and divided by an overdispersion: fair for independent requests either way
        for spread in (1.0, 2.5):
            mean = _binomial_mean(n, r, lambda k, g=g, spread=spread: paid(k, g, spread))
            assert mean <= 1.0 + 1e-9, (RATIOS[g - len(STAKES)], spread)


def test_a_large_excess_wins_the_rate_bets_far_more_than_the_linear_ones() -> None:
    # +5 error points on 300 requests against a 2.1 % reference: 15 errors where 6.3 were due
    cap, top = slice_cap(0.01, 3), rate_cap(0.01, 3)
    b = bet(SliceObservation(15, 300, 0.021), cap, top)
    linear, rates = b.multipliers[: len(STAKES)], b.multipliers[len(STAKES) :]
    assert max(linear) < 2.5 and max(rates) == pytest.approx(top)
    assert b.visible
    # counts that swing from slice to slice (overdispersion 6): the rate bets weaken
    assert max(bet(SliceObservation(15, 300, 0.021), cap, top, spread=6.0).multipliers) < max(rates)


def test_a_slice_without_requests_is_no_evidence() -> None:
    assert excess(SliceObservation(0, 0, 0.01), 4.0) == 0.0
    assert bet(SliceObservation(0, 0, 0.01), 4.0, 4.0).multipliers == (1.0,) * GAMBLERS


def test_the_e_value_of_a_later_start_ignores_earlier_slices() -> None:
    def b(u: float) -> Bet:
        return Bet(u, tuple(1 + lam * u for lam in STAKES) * 2)

    prefixes = log_wealth_prefixes([b(4.0), b(4.0), b(-0.5), b(-0.5)])
    later = log_wealth_prefixes([b(-0.5), b(-0.5)])
    assert log_e_value(prefixes, 2, 4) == pytest.approx(log_e_value(later, 0, 2))


def test_dispersion_is_one_for_binomial_spread_and_grows_with_correlation() -> None:
    assert dispersion([10, 10, 10], [1000, 1000, 1000]) == 1.0
    assert dispersion([0, 0, 30], [1000, 1000, 1000]) > 10


EDGES = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, math.inf)


def _histogram(survival, n: float = 100_000.0) -> hist.Buckets:
    return tuple((b, n * (1 - (0.0 if math.isinf(b) else survival(b)))) for b in EDGES)


def test_quantile_interpolates_like_histogram_quantile() -> None:
    buckets = ((0.1, 90.0), (0.2, 99.0), (0.4, 100.0), (math.inf, 100.0))
    assert hist.quantile(buckets, 0.95) == pytest.approx(0.1 + 0.1 * 5 / 9)
    assert hist.quantile(((0.1, 0.0), (math.inf, 10.0)), 0.99) == 0.1  # in +Inf: the last bound
    assert hist.quantile(((0.1, 0.0), (math.inf, 0.0)), 0.99) is None


def test_geometric_interpolation_is_exact_for_an_exponential_tail_and_tighter_than_linear() -> None:
    exponential = _histogram(lambda x: math.exp(-x / 0.04))
    true = math.exp(-0.174 / 0.04)
    assert hist.tail_share_beyond(exponential, 0.174) == pytest.approx(true, rel=1e-6)
    assert hist.share_beyond(exponential, 0.174) > true  # linear over-states a falling tail


def test_geometric_interpolation_is_an_upper_bound_for_a_lognormal_tail_near_its_p99() -> None:
    sigma, median = 0.5, 0.16 / math.exp(2.326 * 0.5)

    def survival(x: float) -> float:
        return 0.5 * math.erfc((math.log(x / median) / sigma) / math.sqrt(2))

    lognormal = _histogram(survival)
    for x in (0.16, 0.174, 0.19, 0.22):
        true = survival(x)
        assert true <= hist.tail_share_beyond(lognormal, x) <= hist.share_beyond(lognormal, x)  # type: ignore[operator]


def test_tail_index_is_read_from_the_buckets() -> None:
    pareto = _histogram(lambda x: min(1.0, (x / 0.05) ** -4.0))
    assert hist.tail_index(pareto, 0.17) == pytest.approx(4.0, rel=1e-6)


def test_an_invalid_histogram_is_refused_and_a_dipping_one_is_mended() -> None:
    assert not hist.valid(None)
    assert not hist.valid(((0.1, 5.0), (0.2, 6.0)))  # no +Inf
    assert not hist.valid(((0.2, 5.0), (0.1, 6.0), (math.inf, 7.0)))  # bounds out of order
    assert not hist.valid(((0.1, math.nan), (math.inf, 6.0)))
    assert not hist.valid(((0.1, -1.0), (math.inf, 6.0)))
    # Prometheus' increase() extrapolates each bucket alone: a small dip is read, mended
    dipping = ((0.1, 5.0), (0.2, 4.9), (math.inf, 6.0))
    assert hist.valid(dipping)
    assert hist.monotone(dipping) == ((0.1, 5.0), (0.2, 5.0), (math.inf, 6.0))


def test_the_warm_up_allowance_fades_by_e_every_third_of_max_warmup_and_ends_there() -> None:
    times = [7.5 + 15 * i for i in range(14)]
    allowed = allowances([0.3] + [0.0] * 13, times, seed=3, max_warmup=180.0)
    assert allowed[0] == 0.0  # a slice never excuses itself
    assert allowed[4] / allowed[8] == pytest.approx(math.e, rel=1e-6)  # 60 s apart
    assert allowed[12] == 0.0 and allowed[13] == 0.0  # past 180 s
    assert allowances([0.3, 0.3], [7.5, 22.5], seed=3, max_warmup=0.0) == [0.0, 0.0]
