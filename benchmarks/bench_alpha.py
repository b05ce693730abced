"""Does the false-rollback bound hold? Many healthy releases under continuous monitoring.

``python -m benchmarks alpha [--runs=2000] [--seed-start=30000] [--jobs=J] [--strategy=S]``
runs the strategy (default ``canarypilot``, the default policy) on every healthy
built-in family — identical versions, a faster canary, traffic dips, coarse
buckets, warm-ups, correlated stalls and shared jitter, canary-only stalls and
bursts, low traffic, 30 s scrapes with 20 s lag — spreading ``--runs`` over them,
on a seed range of its own. It prints the healthy runs rolled back and left
undecided, per family and in all, with the exact (Clopper–Pearson) 95 % upper
bound on the false-rollback rate: the issue's target is α = 1 % *however often
the canary is looked at*, and the controller looks every 15 s.
"""

from __future__ import annotations

import math
import os

from benchmarks.bench_strategies import option


def upper_bound(failures: int, runs: int, confidence: float = 0.95) -> float:
    """The exact one-sided upper confidence bound of a binomial rate (Clopper–Pearson)."""
    if failures >= runs:
        return 1.0
    tail = 1 - confidence

    def cdf(p: float) -> float:  # P(X <= failures) at rate p, in log space (no overflow)
        def term(k: int) -> float:
            log_comb = math.lgamma(runs + 1) - math.lgamma(k + 1) - math.lgamma(runs - k + 1)
            return math.exp(log_comb + k * math.log(p) + (runs - k) * math.log1p(-p))

        return sum(term(k) for k in range(failures + 1))

    low, high = failures / runs, 1.0 - 1e-12
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if cdf(mid) > tail else (low, mid)
    return high


def run(argv: list[str]) -> None:
    from canarypilot.sim.bench import builtin_suite, run_bench

    runs = int(option(argv, "runs", "2000") or 2000)
    start = int(option(argv, "seed-start", "30000") or 30000)
    jobs = int(option(argv, "jobs", str(len(os.sched_getaffinity(0)))) or 1)
    strategy = option(argv, "strategy", "canarypilot") or "canarypilot"
    healthy = [s for s in builtin_suite() if s.expect == "promote"]
    seeds = max(1, -(-runs // len(healthy)))
    report = run_bench(healthy, strategies=[strategy], seeds=seeds, jobs=jobs, seed_start=start)
    print(f"{strategy}: {len(healthy)} healthy families x {seeds} seeds ({start}-{start + seeds - 1})")
    print(f"{'family':<28} {'rolled back':>12} {'undecided':>10}")
    for family, row in report["families"].items():
        s = row[strategy]
        print(f"{family:<28} {s['false_rollbacks']:>7}/{s['runs']:<4} {s['healthy_undecided']:>10}")
    total = report["summary"][strategy]
    failures, count = total["false_rollbacks"], total["healthy_runs"]
    bound = upper_bound(failures, count)
    verdict = "holds" if bound <= 0.01 else ("consistent" if failures / count <= 0.01 else "missed")
    print(
        f"all: {failures}/{count} rolled back ({failures / count:.2%}; 95% upper bound {bound:.2%}), "
        f"{total['healthy_undecided']} undecided; alpha = 1%: {verdict}"
    )
    speed = report["speed"]
    print(f"{speed['runs']} runs in {speed['wall_seconds']:.1f} s ({jobs} job(s))")
