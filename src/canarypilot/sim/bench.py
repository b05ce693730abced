"""The bench: every scenario of a suite, many seeds, every strategy, one verdict.

For each strategy it measures what an on-call engineer cares about:

* false rollback rate — healthy versions (``expect: promote``) rolled back;
* detection rate — bad versions (``expect: rollback``) rolled back;
* time to detect — regression onset (first bad request served) to the
  rollback decision; median and p90;
* time to restore — rollback decision to the router confirming 0 %;
* bad requests — errors plus requests slower than the SLO served by a bad
  canary from its onset until the traffic was back on stable (or until the
  scenario's end, when it was promoted);
* time to promote — start to 100 % for healthy versions.

Runs are independent, so ``jobs > 1`` spreads them over processes; results are
sorted afterwards, so the report does not depend on the number of jobs.
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from canarypilot._exceptions import ConfigError
from canarypilot.policy import Settings
from canarypilot.sim.catalog import STRATEGIES
from canarypilot.sim.engine import RunResult, default_settings, simulate
from canarypilot.sim.report import check_targets, ratios
from canarypilot.sim.scenario import Scenario, load_scenario
from canarypilot.sim.timeline import Outcome

MAX_SCENARIOS = 500


def builtin_suite() -> list[Scenario]:
    """The scenarios shipped in ``canarypilot/sim/scenarios``."""
    folder = resources.files("canarypilot.sim").joinpath("scenarios")
    with resources.as_file(folder) as path:
        return load_suite(path)


def load_suite(directory: str | Path) -> list[Scenario]:
    """Every ``*.yaml``/``*.yml`` scenario in ``directory``, sorted by name."""
    folder = Path(directory)
    if not folder.is_dir():
        raise ConfigError(f"scenario suite {folder} is not a directory")
    files = sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])
    if not files:
        raise ConfigError(f"no *.yaml scenarios in {folder}")
    if len(files) > MAX_SCENARIOS:
        raise ConfigError(f"{folder} holds {len(files)} scenarios; the bench takes at most {MAX_SCENARIOS}")
    scenarios = [load_scenario(f) for f in files]
    names = [s.name for s in scenarios]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"scenario names must be unique in a suite; repeated: {', '.join(duplicates)}")
    return sorted(scenarios, key=lambda s: s.name)


@dataclass(frozen=True, slots=True)
class _Job:
    scenario: Scenario
    strategy: str
    seeds: tuple[int, ...]
    overrides: dict[str, Any]


def _run_job(job: _Job) -> list[RunResult]:
    settings = default_settings(job.scenario)
    if job.overrides:
        settings = settings.merged(job.overrides)
    return [simulate(job.scenario, job.strategy, seed, settings=settings) for seed in job.seeds]


def run_bench(
    scenarios: Sequence[Scenario],
    *,
    strategies: Sequence[str] = tuple(STRATEGIES),
    seeds: int = 40,
    jobs: int = 1,
    overrides: dict[str, Any] | None = None,
    seed_start: int = 0,
) -> dict[str, Any]:
    """Run everything and return the report (what ``--format json`` prints).

    Seeds are ``seed_start`` … ``seed_start + seeds - 1``: tune a policy on one range
    and report it on another (held out), so the numbers are not fitted to the noise.
    """
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        raise ConfigError(f"unknown strategy {unknown[0]!r}; choose from {', '.join(STRATEGIES)}")
    if seeds < 1:
        raise ConfigError("--seeds must be at least 1")
    if jobs < 1:
        raise ConfigError("--jobs must be at least 1")
    if seed_start < 0:
        raise ConfigError("--seed-start must not be negative")
    overrides = overrides or {}
    Settings().merged(overrides)  # fail early, in this process, on a bad override
    chunk = max(1, min(10, seeds // 2))
    end = seed_start + seeds
    work = [
        _Job(scenario, strategy, tuple(range(start, min(end, start + chunk))), overrides)
        for scenario in scenarios
        for strategy in strategies
        for start in range(seed_start, end, chunk)
    ]
    started = time.perf_counter()
    results: list[RunResult] = []
    if jobs == 1:
        for job in work:
            results.extend(_run_job(job))
    else:
        # "spawn": a fresh interpreter per worker, never a fork of a process that may
        # hold threads or an event loop (forking those can deadlock).
        context = multiprocessing.get_context("spawn")
        workers = min(jobs, os.cpu_count() or 1, len(work))
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            for batch in pool.map(_run_job, work):
                results.extend(batch)
    wall = time.perf_counter() - started
    results.sort(key=lambda r: (r.scenario, r.strategy, r.seed))
    simulated = sum(r.simulated_seconds for r in results)
    report: dict[str, Any] = {
        "seeds": seeds,
        "seed_start": seed_start,
        "jobs": jobs,
        "strategies": list(strategies),
        "scenarios": [
            {
                "name": s.name,
                "family": s.family,
                "expect": s.expect,
                "scrape_interval_seconds": s.monitoring.scrape_interval_seconds,
            }
            for s in scenarios
        ],
        "overrides": overrides,
        "summary": {name: summarize([r for r in results if r.strategy == name]) for name in strategies},
        "families": families(results, scenarios, strategies),
        "speed": {
            "runs": len(results),
            "wall_seconds": round(wall, 3),
            "simulated_rollout_minutes": round(simulated / 60, 1),
            "simulated_minutes_per_second": round(simulated / 60 / wall, 1) if wall > 0 else None,
        },
        "targets": [],
        "runs": [r.to_dict() for r in results],
    }
    report["targets"] = check_targets(report)
    return report


def _median(values: Sequence[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def _p90(values: Sequence[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    # Nearest rank: the smallest value with at least 90 % of the values at or below it.
    return round(ordered[max(0, -(-9 * len(ordered) // 10) - 1)], 1)


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def summarize(runs: Iterable[RunResult]) -> dict[str, Any]:
    """The numbers of one strategy (or one strategy on one family)."""
    runs = list(runs)
    healthy = [r for r in runs if r.expect == "promote"]
    bad = [r for r in runs if r.expect == "rollback"]
    false_rb = [r for r in healthy if r.outcome is Outcome.ROLLED_BACK]
    promoted = [r for r in healthy if r.outcome is Outcome.PROMOTED]
    detected = [r for r in bad if r.outcome is Outcome.ROLLED_BACK]
    ttd = [t for r in detected if (t := r.time_to_detect) is not None]
    ttr = [t for r in runs if (t := r.time_to_restore) is not None]
    promote_times = [r.promoted_at for r in promoted if r.promoted_at is not None]
    rolled_back = [r for r in runs if r.outcome is Outcome.ROLLED_BACK]
    return {
        "runs": len(runs),
        "healthy_runs": len(healthy),
        "false_rollbacks": len(false_rb),
        "false_rollback_rate": _rate(len(false_rb), len(healthy)),
        "healthy_undecided": sum(r.outcome is Outcome.UNDECIDED for r in healthy),
        "bad_runs": len(bad),
        "detected": len(detected),
        "detection_rate": _rate(len(detected), len(bad)),
        "rolled_back_before_onset": sum(1 for r in detected if r.time_to_detect is None),
        "ttd_median_seconds": _median(ttd),
        "ttd_p90_seconds": _p90(ttd),
        "time_to_restore_median_seconds": _median(ttr),
        "bad_requests_total": sum(r.bad_requests for r in bad),
        "bad_requests_mean": round(statistics.mean(r.bad_requests for r in bad), 1) if bad else None,
        "promote_median_seconds": _median(promote_times),
        "promote_p90_seconds": _p90(promote_times),
        "rollback_rate": _rate(len(rolled_back), len(runs)),
    }


def families(
    results: Sequence[RunResult], scenarios: Sequence[Scenario], strategies: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Per family (scenario group), per strategy: the same numbers, to see where each one loses."""
    out: dict[str, dict[str, Any]] = {}
    for family in sorted({s.family for s in scenarios}):
        expect = next(s.expect for s in scenarios if s.family == family)
        row: dict[str, Any] = {"expect": expect}
        for name in strategies:
            runs = [r for r in results if r.family == family and r.strategy == name]
            row[name] = summarize(runs)
        row["ratios"] = {name: ratios(row, name) for name in strategies}
        out[family] = row
    return out
