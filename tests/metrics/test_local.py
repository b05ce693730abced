"""The in-memory series store and the snapshot computed from it.

Expected values come from ``tests.support.promdata``, which derives what
Prometheus must answer from the traffic description, independently of
canarypilot's PromQL functions.
"""

from __future__ import annotations

import math

import pytest

from canarypilot import ConfigError, Target
from canarypilot.metrics.local import SeriesStore, StoreMetrics, evaluate
from canarypilot.policy import QueryPolicy
from tests.support.promdata import END, ServiceData, Traffic

TARGET = Target("checkout")
STABLE = Traffic("v1-stable", rps=20, latency=((0.05, 0.95), (0.3, 0.05)))
CANARY = Traffic("v2-canary", rps=5, latency=((0.05, 0.90), (0.4, 0.10)), error_fraction=0.02)


def fill(store: SeriesStore, *data: ServiceData, extra: dict[str, str] | None = None) -> SeriesStore:
    for service in data:
        for name, labels, ts, value in service.samples():
            store.append(name, {**labels, **(extra or {})}, ts, value)
    return store


def query(**changes: object) -> QueryPolicy:
    return QueryPolicy(**changes)  # type: ignore[arg-type]


class TestSeriesStore:
    def test_keeps_only_the_retention(self) -> None:
        store = SeriesStore(retention_seconds=60)
        for t in range(0, 301, 15):
            store.append("m", {"a": "1"}, float(t), float(t))
        [(_, samples)] = list(store.series("m"))
        assert [t for t, _ in samples] == [240.0, 255.0, 270.0, 285.0, 300.0]

    def test_evict_forgets_series_that_stopped(self) -> None:
        store = SeriesStore(retention_seconds=60)
        store.append("m", {"pod": "old"}, 0.0, 1.0)
        store.append("m", {"pod": "new"}, 100.0, 1.0)
        assert store.evict(now=100.0) == 1
        assert [labels["pod"] for labels, _ in store.series("m")] == ["new"]
        assert len(store) == 1

    def test_refuses_series_beyond_the_limit_and_counts_them(self) -> None:
        store = SeriesStore(max_series=2)
        assert store.append("m", {"i": "1"}, 1.0, 1.0)
        assert store.append("m", {"i": "2"}, 1.0, 1.0)
        assert not store.append("m", {"i": "3"}, 1.0, 1.0)
        assert store.append("m", {"i": "1"}, 2.0, 2.0)  # known series still grow
        assert (len(store), store.series_refused) == (2, 1)

    def test_refuses_samples_out_of_order(self) -> None:
        store = SeriesStore()
        store.append("m", {}, 10.0, 1.0)
        assert not store.append("m", {}, 10.0, 2.0)
        assert not store.append("m", {}, 5.0, 2.0)
        assert store.out_of_order == 2

    def test_mark_stale_once(self) -> None:
        store = SeriesStore()
        store.append("m", {}, 10.0, 1.0)
        assert store.mark_stale("m", {}, 20.0)
        assert not store.mark_stale("m", {}, 30.0)
        assert not store.mark_stale("other", {}, 30.0)


class TestEvaluate:
    def test_matches_what_prometheus_answers(self) -> None:
        data = ServiceData("checkout", versions=(STABLE, CANARY))
        snap = evaluate(fill(SeriesStore(), data), [TARGET], query(), at=END)[TARGET]
        for got, version in ((snap.stable, "v1-stable"), (snap.canary, "v2-canary")):
            assert got.requests == pytest.approx(data.requests(version, 300))
            assert got.error_rate == pytest.approx(data.error_rate(version, 300))
            assert got.p99_seconds == pytest.approx(data.quantile(version, 0.99, 300))
        assert (snap.at, snap.window_seconds, snap.age_seconds) == (END, 300.0, 0.0)

    def test_pods_are_summed_like_sum_by_version(self) -> None:
        halves = [
            ServiceData("checkout", versions=(Traffic("v1-stable", rps=10), Traffic("v2-canary", rps=2))),
            ServiceData("checkout", versions=(Traffic("v1-stable", rps=10), Traffic("v2-canary", rps=3))),
        ]
        store = SeriesStore()
        for pod, data in enumerate(halves):
            fill(store, data, extra={"instance": f"pod-{pod}"})
        snap = evaluate(store, [TARGET], query(), at=END)[TARGET]
        assert snap.stable.requests == pytest.approx(20 * 300)
        assert snap.canary.requests == pytest.approx(5 * 300)
        assert snap.canary.error_rate == 0.0  # requests but no 5xx series: no errors

    def test_a_missing_version_is_none_never_zero(self) -> None:
        data = ServiceData("checkout", versions=(STABLE,))
        snap = evaluate(fill(SeriesStore(), data), [TARGET], query(), at=END)[TARGET]
        assert snap.canary.requests is None
        assert snap.canary.p99_seconds is None
        assert snap.canary.error_rate is None
        assert snap.stable.requests == pytest.approx(20 * 300)

    def test_other_services_and_selectors_are_kept_apart(self) -> None:
        store = SeriesStore()
        fill(store, ServiceData("checkout", versions=(STABLE, CANARY)), extra={"namespace": "prod"})
        fill(store, ServiceData("checkout", versions=(STABLE, CANARY)), extra={"namespace": "dev"})
        fill(store, ServiceData("search", versions=(STABLE, CANARY)), extra={"namespace": "prod"})
        q = query(extra_selector='namespace="prod"')
        snaps = evaluate(store, [TARGET, Target("search")], q, at=END)
        assert snaps[TARGET].stable.requests == pytest.approx(20 * 300)
        assert snaps[Target("search")].canary.requests == pytest.approx(5 * 300)

    def test_renamed_metrics_and_labels_are_honoured(self) -> None:
        store = SeriesStore()
        data = ServiceData("checkout", versions=(STABLE, CANARY))
        for name, labels, ts, value in data.samples():
            labels = dict(labels)  # the generator reuses its dicts
            labels["track"] = labels.pop("version")
            store.append(name.replace("http_requests_total", "reqs_total"), labels, ts, value)
        q = query(version_label="track", requests_metric="reqs_total", quantile=0.5)
        snap = evaluate(store, [TARGET], q, at=END)[TARGET]
        assert snap.canary.requests == pytest.approx(5 * 300)
        assert snap.canary.p99_seconds == pytest.approx(data.quantile("v2-canary", 0.5, 300))

    def test_a_stale_newest_sample_reports_no_age_for_that_version(self) -> None:
        store = fill(SeriesStore(), ServiceData("checkout", versions=(STABLE, CANARY), end=END - 60))
        for labels, _ in list(store.series("http_requests_total")):
            if labels["version"] == "v2-canary":
                store.mark_stale("http_requests_total", labels, END - 45)
        snap = evaluate(store, [TARGET], query(), at=END)[TARGET]
        assert snap.age_seconds == pytest.approx(60)  # the stable version's newest sample
        assert snap.canary.requests is not None  # the window still holds the canary's samples

    def test_window_override_is_whole_seconds_and_bounded_by_retention(self) -> None:
        store = fill(SeriesStore(retention_seconds=600), ServiceData("checkout", versions=(STABLE, CANARY)))
        snap = evaluate(store, [TARGET], query(), at=END, window_seconds=120.7)[TARGET]
        assert snap.window_seconds == 120
        assert snap.stable.requests == pytest.approx(20 * 120)
        with pytest.raises(ConfigError, match="longer than"):
            evaluate(store, [TARGET], query(window="15m"), at=END)
        with pytest.raises(ConfigError, match="shorter than a second"):
            evaluate(store, [TARGET], query(), at=END, window_seconds=0.5)

    def test_custom_query_templates_are_refused_not_ignored(self) -> None:
        custom = query(requests_template="sum by ($by) (rate($requests_metric{$selector}[$window]))")
        with pytest.raises(ConfigError, match="requests_template"):
            StoreMetrics(SeriesStore(), custom, now=lambda: END)


class TestStoreMetrics:
    async def test_is_a_batch_provider_over_the_store(self) -> None:
        store = fill(
            SeriesStore(),
            ServiceData("checkout", versions=(STABLE, CANARY)),
            ServiceData("search", versions=(STABLE, CANARY)),
        )
        provider = StoreMetrics(store, now=lambda: END)
        snaps = await provider.snapshot_many([TARGET, Target("search")])
        assert snaps[Target("search")].stable.requests == pytest.approx(20 * 300)
        assert (await provider.snapshot(TARGET)).canary.requests == pytest.approx(5 * 300)
        assert await provider.is_online()

    async def test_without_job_matching_any_service_name_reads_the_store(self) -> None:
        store = fill(SeriesStore(), ServiceData("whatever", versions=(STABLE, CANARY)))
        provider = StoreMetrics(store, now=lambda: END, match_job=False)
        assert (await provider.snapshot(TARGET)).stable.requests == pytest.approx(20 * 300)
        assert math.isfinite((await provider.snapshot(Target("other"))).canary.p99_seconds or math.nan)
