"""The ``oracle`` strategy: Wald's SPRT with the scenario's true parameters.

No analyzer can know more than this one. It sees each tick of canary traffic as
soon as the scrape holding it is published (the same monitoring delay every
strategy has), and it knows what the tick was drawn from: the healthy canary's
latency at that moment (warm-up, bursts, stalls, jitter and noise included) and,
when the canary is degraded, its true degradation. For each tick it adds the
log-likelihood ratio of the canary's counts (histogram buckets and errors) under

* H1, the truth when the canary is degraded, or else the smallest bad canary the
  SLO names (latency × ``1 + max_latency_delta``, errors + ``max_error_delta``);
* H0, a canary as good as stable at that moment;

and stops at Wald's bounds: above ``log((1 − β)/α)`` it rolls back, below
``log(β/(1 − α))`` the weight is validated and it takes the next rung. Wald's
SPRT is the test with the least expected sample size at these error rates, so
its time to detect is the floor the others are measured against, at the same
false-rollback rate (α, split over the rungs).

The ladder is the validated-capacity ladder: from ``interpolation.min_weight``
each rung multiplies the weight by ``rollout.max_growth_factor``, 100 % included
and judged before promotion; promotion waits for the policy's bake time too
(``bake_fraction`` of the schedule), so a late regression is not outrun.
"""

from __future__ import annotations

import math

import numpy as np

from canarypilot.policy import Settings
from canarypilot.sim.strategies import Context, TruthFeed, TruthRecord
from canarypilot.sim.timeline import MarkKind

#: The false-rollback rate the oracle is held to (over the whole ladder), and its miss rate per rung.
ALPHA = 0.01
BETA = 0.01
_TINY = 1e-12


def ladder(settings: Settings) -> list[float]:
    """From the minimum weight, ×max_growth_factor per rung, to 100 % (judged too)."""
    weight = max(settings.interpolation.min_weight, 1.0)
    growth = max(settings.rollout.max_growth_factor, 1.1)
    rungs = [weight]
    while rungs[-1] < 100:
        rungs.append(min(100.0, round(rungs[-1] * growth, 3)))
    return rungs


class Oracle:
    """Wald's SPRT per rung, on the true parameters of the scenario."""

    name = "oracle"
    needs_truth = True

    async def run(self, ctx: Context) -> None:
        feed = ctx.truth
        if feed is None:
            raise RuntimeError("the oracle needs the simulation's truth feed")
        rungs = ladder(ctx.settings)
        upper = math.log((1 - BETA) / (ALPHA / len(rungs)))
        lower = math.log(BETA / (1 - ALPHA / len(rungs)))
        scrape = ctx.scenario.monitoring.scrape_interval_seconds
        rollout = ctx.settings.rollout
        bake_until = ctx.clock.now() + rollout.bake_fraction * sum(rollout.pauses_seconds)
        for weight in rungs:
            await ctx.router.set_weight(weight)
            llr = 0.0
            while True:
                await ctx.clock.sleep(scrape)
                llr += sum(_llr(feed, r) for r in feed.visible() if r.weight == weight)
                if llr >= upper:
                    ctx.mark(
                        MarkKind.ROLLBACK, weight, f"SPRT: log-likelihood ratio {llr:.1f} >= {upper:.1f}"
                    )
                    await ctx.router.set_weight(0)
                    return
                if llr <= lower:
                    if weight < 100 or ctx.clock.now() >= bake_until:
                        break
                    llr = 0.0  # validated at 100 % before the bake time: keep watching
            ctx.mark(MarkKind.ANALYSIS, weight, f"SPRT: {weight:g}% validated ({llr:.1f} <= {lower:.1f})")
        ctx.mark(MarkKind.PROMOTED, 100, "SPRT: every rung validated")


def _llr(feed: TruthFeed, record: TruthRecord) -> float:
    """log P(counts | H1) − log P(counts | H0) for one tick of canary traffic."""
    scenario, world, truth = feed.scenario, feed.world, record.truth
    served = truth.served
    h0 = world.histogram_probs(scenario.stable, truth.healthy_factor)
    p0 = scenario.stable.error_rate + truth.healthy_errors
    if truth.degraded:
        h1 = world.histogram_probs(scenario.canary, truth.healthy_factor * truth.degraded_factor)
        p1 = scenario.canary.error_rate + truth.healthy_errors + truth.degraded_errors
    else:
        h1 = world.histogram_probs(scenario.stable, truth.healthy_factor * (1 + scenario.max_latency_delta))
        p1 = p0 + scenario.max_error_delta
    p0, p1 = (min(1 - _TINY, max(_TINY, p)) for p in (p0, p1))
    buckets = float(np.dot(served.buckets, np.log(np.maximum(h1, _TINY) / np.maximum(h0, _TINY))))
    errors = served.errors * math.log(p1 / p0)
    successes = (served.requests - served.errors) * math.log((1 - p1) / (1 - p0))
    return buckets + errors + successes
