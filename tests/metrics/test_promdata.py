"""The test-data builder's own arithmetic: other tests trust its expected values."""

from __future__ import annotations

import math

import pytest

from tests.support.promdata import END, ServiceData, Traffic, histogram_quantile, openmetrics


def test_quantile_interpolates_inside_the_bucket_holding_the_rank() -> None:
    # 100 observations: 90 at or below 0.1 s, 10 more at or below 0.5 s; rank 99 is 9/10 into (0.1, 0.5].
    buckets = [(0.1, 90.0), (0.5, 100.0), (math.inf, 100.0)]
    assert histogram_quantile(0.99, buckets) == pytest.approx(0.1 + 0.4 * 0.9)


def test_quantile_in_the_lowest_bucket_starts_from_zero() -> None:
    assert histogram_quantile(0.5, [(0.2, 10.0), (math.inf, 10.0)]) == pytest.approx(0.1)


def test_quantile_beyond_the_last_finite_bound_is_that_bound() -> None:
    assert histogram_quantile(0.99, [(0.1, 50.0), (1.0, 60.0), (math.inf, 100.0)]) == 1.0


def test_no_observations_give_nan_not_zero() -> None:
    assert math.isnan(histogram_quantile(0.99, [(0.1, 0.0), (math.inf, 0.0)]))


def test_counters_grow_linearly_so_expected_increases_are_exact() -> None:
    data = ServiceData("api", (Traffic("v1-stable", rps=4, error_fraction=0.25),), span_seconds=60)
    last = {
        labels["code"]: value
        for name, labels, ts, value in data.samples()
        if name == "http_requests_total" and ts == END
    }
    first_ts = min(ts for _, _, ts, _ in data.samples())
    assert first_ts == END - 60
    assert last == {"200": pytest.approx(180.0), "500": pytest.approx(60.0)}
    assert data.requests("v1-stable", 60) == 240 and data.errors("v1-stable", 60) == 60


def test_openmetrics_text_holds_both_families_and_ends_with_eof() -> None:
    text = openmetrics(ServiceData("api", (Traffic("v1-stable"), Traffic("v2-canary"))))
    assert "# TYPE http_requests counter" in text
    assert "# TYPE http_request_duration_seconds histogram" in text
    assert 'le="+Inf"' in text and text.endswith("# EOF\n")


def test_latency_shares_must_sum_to_one() -> None:
    with pytest.raises(ValueError, match="sum to 1"):
        Traffic("v2-canary", latency=((0.1, 0.5),))
