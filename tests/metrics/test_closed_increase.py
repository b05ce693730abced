"""The store remembers increases over closed ranges: the same numbers as PromQL's increase,
and a range is only remembered once no sample can still change it."""

from __future__ import annotations

from canarypilot.metrics import promql
from canarypilot.metrics.local import SeriesStore


def test_closed_ranges_give_promqls_numbers_and_open_ones_follow_new_samples() -> None:
    store = SeriesStore(retention_seconds=600)
    for t in range(0, 100, 15):
        store.append("c", {"job": "a"}, float(t), float(t * 2))
    samples = next(iter(store.series("c")))[1]
    # Closed (a sample after 60 and one before 30): remembered, equal to increase().
    assert store.closed_increase(samples, 30.0, 60.0) == promql.increase(samples, start=30.0, end=60.0)
    assert store.closed_increase(samples, 30.0, 60.0) == promql.increase(samples, start=30.0, end=60.0)
    # Open at the newest edge: computed afresh, so a later sample is counted.
    before = store.closed_increase(samples, 75.0, 105.0)
    store.append("c", {"job": "a"}, 105.0, 400.0)  # a burst in the newest interval
    after = store.closed_increase(samples, 75.0, 105.0)
    assert after == promql.increase(samples, start=75.0, end=105.0) and after != before


def test_a_range_retention_has_cut_into_is_not_served_from_memory() -> None:
    store = SeriesStore(retention_seconds=60)
    for t in range(0, 100, 15):
        store.append("c", {"job": "a"}, float(t), float(t))
    samples = next(iter(store.series("c")))[1]
    # Retention (60 s) has dropped everything before 30 s: the range from 15 s is not closed.
    assert samples[0][0] == 30.0
    assert store.closed_increase(samples, 15.0, 60.0) == promql.increase(samples, start=15.0, end=60.0)
