"""Step histories from the embedded store: the slice counts a user's verdict rests on."""

from __future__ import annotations

import asyncio

import pytest

from canarypilot._exceptions import ConfigError
from canarypilot.metrics.history import Slicing, StepQuery
from canarypilot.metrics.local import SeriesStore, StoreMetrics
from canarypilot.model import Target
from tests.support.slicedata import END, SLICE, STEP_START, Truth, generate, same_buckets


def _store(interval: float = 15.0) -> tuple[StoreMetrics, Truth]:
    samples, truth = generate(interval=interval)
    store = SeriesStore(retention_seconds=7200)
    for name, labels, t, value in sorted(samples, key=lambda s: s[2]):
        store.append(name, labels, t, value)
    return StoreMetrics(store, now=lambda: END + 5), truth


def test_every_slice_holds_exactly_the_requests_errors_and_buckets_served_in_it() -> None:
    provider, truth = _store()
    slicing = Slicing(slice_seconds=SLICE, scrape_interval=15, lag_seconds=20)
    steps = [StepQuery(Target("checkout"), 25, STEP_START), StepQuery(Target("search"), 10, END - 300)]
    histories = asyncio.run(provider.history_many(steps, slicing=slicing))
    checkout = histories[Target("checkout")]
    # END + 5 less a 20 s lag: the slice ending at END was not scraped yet.
    assert [s.end for s in checkout.slices] == [STEP_START + SLICE * k for k in range(1, 10)]
    assert checkout.since == STEP_START and checkout.weight == 25
    for piece in checkout.slices:
        for version, counts in (("v1-stable", piece.stable), ("v2-canary", piece.canary)):
            key = ("checkout", version)
            assert counts.requests == pytest.approx(truth.requests[key][piece.end])
            assert counts.errors == pytest.approx(truth.errors[key][piece.end])
            assert same_buckets(counts.buckets, truth.buckets[key][piece.end])
    search = histories[Target("search")]
    assert [s.end for s in search.slices] == [END - 240, END - 180, END - 120, END - 60]
    total = sum(truth.requests[("search", "v2-canary")][s.end] for s in search.slices)
    assert search.snapshot.canary.requests == pytest.approx(total)


def test_the_step_start_is_found_from_the_canary_share_when_not_given() -> None:
    provider, _ = _store()
    slicing = Slicing(slice_seconds=SLICE, scrape_interval=15, lag_seconds=20, lookback_seconds=1100)
    history = asyncio.run(provider.history(Target("checkout"), weight=25, slicing=slicing))
    assert history.since == STEP_START
    # At 5 % the step would be the one before the change, which the data no longer shows.
    assert asyncio.run(provider.history(Target("checkout"), weight=5, slicing=slicing)).slices == ()


def test_slices_are_never_shorter_than_two_scrapes_so_coarse_scrapes_still_decide() -> None:
    # The article's checklist: 30 s scrapes, and ~20 s of remote-write lag.
    provider, truth = _store(interval=30.0)
    slicing = Slicing(slice_seconds=10, scrape_interval=30, lag_seconds=20)
    assert slicing.length == 60
    history = asyncio.run(provider.history(Target("checkout"), weight=25, slicing=slicing, since=STEP_START))
    assert len(history.slices) == 9
    assert all(s.canary.requests and s.stable.requests for s in history.slices)


def test_a_grid_is_the_same_for_every_caller_whatever_its_step_start() -> None:
    slicing = Slicing(slice_seconds=30, scrape_interval=15, lag_seconds=15)
    assert slicing.ends(1000.5, 1200) == (1050.0, 1080.0, 1110.0, 1140.0, 1170.0)
    assert slicing.ends(1001, 1040) == ()
    with pytest.raises(ConfigError):
        Slicing(slice_seconds=0)
    with pytest.raises(ConfigError):
        StepQuery(Target("a"), 0)
