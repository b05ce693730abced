"""The local PromQL functions on the edges Prometheus' own scripts do not reach.

The conformance runner (test_oracle.py) checks the common paths against
Prometheus' test data; these cases pin down what a canary decision depends on
besides: staleness, lookback, millisecond edges, label parsing, NaN handling.
"""

from __future__ import annotations

import math

import pytest

from canarypilot.metrics import promql
from canarypilot.metrics.promql import (
    STALE_NAN,
    Matcher,
    histogram_quantile,
    increase,
    is_stale,
    latest,
    parse_float,
    parse_matchers,
    rate,
    sum_by,
)

INF = math.inf


def counter(start: float, step: float, n: int, every: float = 15.0, t0: float = 0.0) -> list[promql.Sample]:
    return [(t0 + i * every, start + i * step) for i in range(n)]


class TestRateAndIncrease:
    def test_full_coverage_needs_no_extrapolation(self) -> None:
        # Samples on both edges of the range: the plain difference.
        assert increase(counter(0, 10, 21), start=0, end=300) == pytest.approx(200)
        assert rate(counter(0, 10, 21), start=0, end=300) == pytest.approx(200 / 300)

    def test_one_sample_is_no_data_not_zero(self) -> None:
        assert increase([(100.0, 5.0)], start=0, end=300) is None
        assert rate([], start=0, end=300) is None

    def test_samples_outside_the_range_are_ignored(self) -> None:
        samples = counter(0, 10, 41)  # 0..600s
        assert increase(samples, start=300, end=600) == pytest.approx(200)

    def test_range_is_closed_on_both_edges_at_millisecond_resolution(self) -> None:
        samples = [(299.9994, 0.0), (450.0, 50.0), (600.0004, 100.0)]
        # Both rounded to the edges (300.000 and 600.000): no extrapolation beyond them.
        assert increase(samples, start=300, end=600) == pytest.approx(100)

    def test_reset_adds_back_the_value_before_it(self) -> None:
        samples = [(0, 10.0), (15, 20.0), (30, 5.0), (45, 15.0)]
        assert increase(samples, start=0, end=45) == pytest.approx(10 + 20 + 10 - 15)

    def test_series_that_starts_inside_the_range_extrapolates_half_an_interval(self) -> None:
        # A pod that appeared 150s into a 300s window: 150s of samples, 15s apart.
        samples = counter(1000, 15, 11, t0=150)
        # 150s sampled, +7.5s at the start (half an interval), +0s at the end.
        assert increase(samples, start=0, end=300) == pytest.approx(150 * 157.5 / 150)

    def test_a_counter_is_never_extrapolated_below_zero(self) -> None:
        # A fresh counter 3s after its start: extrapolating 7.5s back would go negative.
        samples = [(100 + 15 * i, 3.0 + 15 * i) for i in range(5)]
        # Half an interval back (7.5s) would give 67.5; the zero point is 3s back: 63.
        assert increase(samples, start=0, end=160) == pytest.approx(63)

    def test_staleness_markers_are_not_samples(self) -> None:
        samples = [(0, 0.0), (15, 15.0), (30, STALE_NAN), (45, 45.0), (60, 60.0)]
        assert increase(samples, start=0, end=60) == pytest.approx(60)

    def test_a_nan_sample_in_the_middle_is_not_a_reset(self) -> None:
        samples = [(0, 0.0), (15, math.nan), (30, 30.0)]
        assert increase(samples, start=0, end=30) == pytest.approx(30)  # NaN < x is false, as in Go

    def test_a_nan_at_an_edge_makes_the_result_nan(self) -> None:
        assert math.isnan(increase([(0, 0.0), (15, math.nan)], start=0, end=15) or 0.0)


class TestLatest:
    def test_newest_sample_within_the_lookback(self) -> None:
        samples = [(0, 1.0), (100, 2.0)]
        assert latest(samples, at=250) == (100, 2.0)
        assert latest(samples, at=400) == (100, 2.0)  # exactly 5m old: still seen (2.x)
        assert latest(samples, at=400.001) is None

    def test_a_staleness_marker_hides_the_series(self) -> None:
        samples = [(0, 1.0), (15, STALE_NAN)]
        assert latest(samples, at=20) is None
        assert latest(samples, at=10) == (0, 1.0)

    def test_stale_marker_is_one_particular_nan(self) -> None:
        assert is_stale(STALE_NAN)
        assert not is_stale(math.nan)
        assert not is_stale(1.0)


class TestHistogramQuantile:
    def test_interpolates_inside_the_bucket(self) -> None:
        assert histogram_quantile(0.5, [(1.0, 10), (2.0, 30), (INF, 40)]) == pytest.approx(1.5)

    def test_lowest_positive_bucket_starts_at_zero(self) -> None:
        assert histogram_quantile(0.25, [(0.4, 10), (INF, 10)]) == pytest.approx(0.1)

    def test_rank_in_inf_bucket_gives_highest_finite_bound(self) -> None:
        assert histogram_quantile(0.99, [(0.1, 50), (0.5, 90), (INF, 100)]) == 0.5

    def test_order_and_duplicate_bounds_do_not_matter(self) -> None:
        shuffled = [(INF, 40), (2.0, 15), (1.0, 5), (2.0, 15)]
        assert histogram_quantile(0.5, shuffled) == histogram_quantile(0.5, [(1.0, 5), (2.0, 30), (INF, 40)])

    @pytest.mark.parametrize(
        "buckets",
        [
            [],
            [(1.0, 10), (2.0, 20)],  # no +Inf bucket
            [(INF, 20)],  # only +Inf
            [(1.0, 0), (INF, 0)],  # no observations
        ],
    )
    def test_undefined_quantiles_are_nan(self, buckets: list[tuple[float, float]]) -> None:
        assert math.isnan(histogram_quantile(0.99, buckets))

    def test_quantile_outside_zero_one(self) -> None:
        buckets = [(1.0, 10), (INF, 20)]
        assert histogram_quantile(-0.5, buckets) == -INF
        assert histogram_quantile(1.5, buckets) == INF
        assert math.isnan(histogram_quantile(math.nan, buckets))

    def test_float_noise_between_equal_buckets_is_not_an_observation(self) -> None:
        # Sums of rates: 100 and 100 + 1 ulp must behave like equal counts.
        noisy = [
            (0.1, 90.0),
            (0.5, 100.0),
            (1.0, math.nextafter(100.0, INF)),
            (INF, math.nextafter(100.0, INF)),
        ]
        clean = [(0.1, 90.0), (0.5, 100.0), (1.0, 100.0), (INF, 100.0)]
        assert histogram_quantile(1.0, noisy) == histogram_quantile(1.0, clean) == 0.5

    def test_non_monotonic_counts_use_the_envelope(self) -> None:
        assert histogram_quantile(0.5, [(1.0, 10), (2.0, 8), (INF, 20)]) == pytest.approx(
            histogram_quantile(0.5, [(1.0, 10), (2.0, 10), (INF, 20)])
        )

    def test_zero_count_lowest_bucket_at_q0_is_nan_as_in_go(self) -> None:
        assert math.isnan(histogram_quantile(0.0, [(1.0, 0), (2.0, 5), (INF, 5)]))


class TestParseFloat:
    @pytest.mark.parametrize(
        ("text", "value"),
        [("0.25", 0.25), (".2", 0.2), ("1e0", 1.0), ("2.0e-1", 0.2), ("+Inf", INF), ("+inf", INF),
         ("-Inf", -INF), ("Infinity", INF), ("0x1p-2", 0.25), ("10", 10.0)],
    )  # fmt: skip
    def test_what_go_accepts(self, text: str, value: float) -> None:
        assert parse_float(text) == value

    @pytest.mark.parametrize("text", ["", " 1", "1_000", "abc", "1e", "+NaN", "1e999", "0x1"])
    def test_what_go_refuses(self, text: str) -> None:
        assert parse_float(text) is None

    def test_nan(self) -> None:
        assert math.isnan(parse_float("NaN") or 0.0)


class TestSumBy:
    def test_groups_by_the_given_labels_and_missing_is_empty(self) -> None:
        series = [({"le": "1", "pod": "a"}, 1.0), ({"le": "1", "pod": "b"}, 2.0), ({"pod": "c"}, 4.0)]
        assert sum_by(series, ["le"]) == {("1",): 3.0, ("",): 4.0}
        assert sum_by(series, []) == {(): 7.0}


class TestMatchers:
    def test_parses_operators_and_escapes(self) -> None:
        got = parse_matchers('namespace="prod", code=~"5..", env!="a\\"b", x!~`c\\d`')
        assert got == [
            Matcher("namespace", "=", "prod"),
            Matcher("code", "=~", "5.."),
            Matcher("env", "!=", 'a"b'),
            Matcher("x", "!~", "c\\d"),
        ]

    def test_regex_is_anchored_and_missing_label_is_empty(self) -> None:
        five = Matcher("code", "=~", "5..")
        assert five.matches({"code": "503"})
        assert not five.matches({"code": "1503"})
        assert not five.matches({})
        assert Matcher("zone", "=", "").matches({})

    @pytest.mark.parametrize("text", ['a="b"} or vector(1)', "a=b", 'a=~"("', 'a="\\q"'])
    def test_refuses_what_is_not_a_matcher_list(self, text: str) -> None:
        with pytest.raises(ValueError):
            parse_matchers(text)

    def test_empty_text_is_no_matchers(self) -> None:
        assert parse_matchers("  ") == []
