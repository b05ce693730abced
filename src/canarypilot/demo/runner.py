"""One demo run, start to finish, with everything it starts stopped on the way out.

The order is the order of a real rollout: the two versions start, the router
puts them behind one address, the metrics backend scrapes them, users arrive,
and the rollout controller moves the weight. Every component is entered on one
``AsyncExitStack`` so an error, a timeout or Ctrl-C unwinds all of them; the
child processes (Prometheus, HAProxy) are also listed in ``Processes``, which
the command stops once more after the event loop has ended, in case a second
Ctrl-C cut the unwinding short.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Coroutine
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from canarypilot.demo.children import Backend, Processes
from canarypilot.demo.live import ProgressView, QuietView, Traffic, percent
from canarypilot.demo.loadgen import LoadGenerator
from canarypilot.demo.report import RunRecord, write_report
from canarypilot.demo.routers import TrafficChangeRouter, start_router
from canarypilot.demo.sample_service import SampleService
from canarypilot.demo.scenarios import Pacing, Scenario
from canarypilot.metrics.base import MetricsProvider
from canarypilot.model import Target
from canarypilot.policy import Settings
from canarypilot.rollout import RolloutController, RolloutEvent, RolloutSpec, StateStore

STABLE, CANARY = "v1-stable", "v2-canary"
T = TypeVar("T")


@dataclass(frozen=True)
class DemoOptions:
    scenario: Scenario
    pacing: Pacing = field(default_factory=Pacing)
    router: Backend = Backend.AUTO
    metrics: Backend = Backend.AUTO
    state_dir: Path | None = None
    report: Path | None = None
    seed: int | None = None
    service: str = "payment-api"


@dataclass(frozen=True)
class DemoResult:
    outcome: str
    ok: bool
    headline: str
    run_dir: Path
    files: list[Path]
    record: RunRecord


ViewFactory = Callable[[str, str, float], ProgressView]


def run_dir_for(state_dir: Path | None, scenario: str) -> Path:
    """A fresh directory for this run's audit log, report and Prometheus data."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    if state_dir is None:
        return Path(tempfile.mkdtemp(prefix=f"canarypilot-demo-{scenario}-"))
    state_dir.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{scenario}-{stamp}-", dir=state_dir))


async def run_demo(
    options: DemoOptions,
    *,
    processes: Processes | None = None,
    make_view: ViewFactory = lambda title, setup, started: QuietView(),
    reports: list[Path] | None = None,
) -> DemoResult:
    """Run one scenario end to end and write its report.

    Interrupted (Ctrl-C, SIGTERM: the task is cancelled), it still stops what it
    started and writes the report of what happened so far, with the outcome
    ``interrupted``, then lets the interruption go on. The files written are
    appended to ``reports`` either way, so the caller can point at them.
    """
    scenario, pacing = options.scenario, options.pacing
    processes = processes if processes is not None else Processes()
    settings = Settings().merged(pacing.settings_overrides())
    run_dir = run_dir_for(options.state_dir, scenario.name)
    rng = random.Random(options.seed)
    events: list[RolloutEvent] = []
    traffic: list[Traffic] = []
    started = time.time()
    outcome, reasons = "interrupted", ["the run was stopped before the rollout finished"]
    setup: dict[str, str] = {}
    stopped_by: BaseException | None = None
    try:
        async with AsyncExitStack() as stack:
            services = {}
            for version, behaviour in ((STABLE, scenario.stable), (CANARY, scenario.canary)):
                service = SampleService(
                    options.service,
                    version,
                    behaviour,
                    total_rps=pacing.rps,
                    rng=random.Random(rng.random()),
                )
                services[version] = await stack.enter_async_context(service)
            router, front, router_name = await start_router(
                stack, processes, options.router, run_dir, services[STABLE], services[CANARY]
            )
            routed = TrafficChangeRouter(router, list(services.values()))
            metrics, metrics_name = await _start_metrics(
                stack, processes, options, settings, run_dir, services
            )
            setup = {
                "scenario": f"{scenario.name}: {scenario.summary}",
                "router": router_name,
                "metrics": metrics_name,
                "load": f"{pacing.rps:g} requests/s through the router",
                "timings": (
                    f"{pacing.steps} steps, {pacing.pause:g}s pause, {pacing.window:g}s window, "
                    f"re-check {pacing.recheck:g}s, warm-up grace {pacing.warmup_grace:g}s"
                ),
                "stable": f"{STABLE} at {services[STABLE].address}",
                "canary": f"{CANARY} at {services[CANARY].address}",
                "run directory": str(run_dir),
            }
            view = make_view(
                f"canarypilot demo · {scenario.name} · expected {scenario.expected.value}",
                f"{_short(router_name)} · {_short(metrics_name)} · {pacing.rps:g} rps",
                started,
            )
            stack.callback(view.close)

            def on_event(event: RolloutEvent) -> None:
                events.append(event)
                view.event(event)

            users = LoadGenerator(front[0], front[1], rps=pacing.rps, duration=pacing.deadline + 30)
            load = asyncio.create_task(users.run(), name="demo-load")
            stack.push_async_callback(_stop_load, users, load)
            sampler = asyncio.create_task(
                _sample(routed, services, users, traffic, view), name="demo-sampler"
            )
            stack.push_async_callback(_cancel, sampler)

            await asyncio.sleep(pacing.lead)
            store = stack.enter_context(StateStore(run_dir))
            spec = RolloutSpec(f"demo-{scenario.name}", Target(options.service, CANARY, STABLE), settings)
            controller = RolloutController(
                spec, metrics=metrics, router=routed, store=store, on_event=on_event
            )
            try:
                async with asyncio.timeout(pacing.deadline):
                    result = await controller.run()
                outcome, reasons = result.phase.value, list(result.reasons)
            except TimeoutError:
                outcome = "timed_out"
                reasons = [f"the rollout did not finish within {pacing.deadline:g}s"]
                with contextlib.suppress(Exception):
                    await routed.reset()
    except (asyncio.CancelledError, KeyboardInterrupt) as exc:
        stopped_by = exc
    finally:
        processes.stop_all()
        shutil.rmtree(run_dir / "prometheus" / "data", ignore_errors=True)
    finished = time.time()
    ok = outcome == scenario.expected.value
    headline = _headline(scenario, outcome, ok, events, finished - started)
    record = RunRecord(
        scenario=scenario.name,
        summary=scenario.summary,
        expected=scenario.expected.value,
        outcome=outcome,
        ok=ok,
        headline=headline,
        started=started,
        finished=finished,
        setup=setup,
        slo=settings.slo,
        events=events,
        traffic=traffic,
        reasons=reasons,
    )
    files = write_report(record, options.report or run_dir / "report.html")
    if reports is not None:
        reports.extend(files)
    if stopped_by is not None:
        raise stopped_by
    return DemoResult(outcome, ok, headline, run_dir, files, record)


def _short(name: str) -> str:
    return name.split(" (", 1)[0]


async def until_terminated(work: Coroutine[Any, Any, T]) -> T:
    """Run ``work``; SIGTERM cancels it as Ctrl-C does, so that its cleanup still runs."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await work
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


def _headline(scenario: Scenario, outcome: str, ok: bool, events: list[RolloutEvent], took: float) -> str:
    weights = [float(e.data.get("confirmed", e.weight)) for e in events if e.kind.value == "router"]
    peak = max(weights, default=0.0)
    what = outcome.replace("_", " ")
    if outcome == "rolled_back":
        what += f" from a peak weight of {percent(peak)}"
    verdict = "as expected" if ok else f"expected {scenario.expected.value.replace('_', ' ')}"
    return f"{'PASS' if ok else 'FAIL'} {scenario.name}: {what} after {took:.0f}s, {verdict}"


async def _start_metrics(
    stack: AsyncExitStack,
    processes: Processes,
    options: DemoOptions,
    settings: Settings,
    run_dir: Path,
    services: dict[str, SampleService],
) -> tuple[MetricsProvider, str]:
    from canarypilot.local.processes import require

    interval = options.pacing.scrape_interval
    choice = options.metrics
    if choice is Backend.AUTO:
        try:
            require("prometheus")
            choice = Backend.REAL
        except Exception:
            choice = Backend.EMBEDDED
    if choice is Backend.REAL:
        from canarypilot.local.prometheus import LocalPrometheus, ScrapeJob
        from canarypilot.metrics.prometheus import PrometheusMetrics
        from canarypilot.policy import PrometheusSettings

        addresses = [s.address for s in services.values()]
        job = ScrapeJob(options.service, addresses, {}, interval=f"{int(interval * 1000)}ms")
        prometheus = LocalPrometheus(run_dir / "prometheus", scrape_jobs=[job])
        processes.add(prometheus)
        await asyncio.to_thread(prometheus.start)
        processes.record()
        stack.push_async_callback(asyncio.to_thread, prometheus.stop)
        provider = PrometheusMetrics(PrometheusSettings(url=prometheus.url), settings.query)
        stack.push_async_callback(provider.aclose)
        return provider, f"Prometheus ({prometheus.url}, scraping every {interval:g}s)"

    from canarypilot.metrics.scrape import ScrapeMetrics, ScrapeSettings

    scrape = ScrapeMetrics(
        {version: [s.address] for version, s in services.items()},
        # Every sample of the run stays: a step that holds until the deadline keeps its evidence.
        ScrapeSettings(interval_seconds=interval, retention_seconds=max(120.0, options.pacing.deadline + 60)),
        query=settings.query,
        service=options.service,
    )
    await stack.enter_async_context(scrape)
    return scrape, f"embedded scraper (every {interval:g}s)"


async def _sample(
    router: TrafficChangeRouter,
    services: dict[str, SampleService],
    users: LoadGenerator,
    traffic: list[Traffic],
    view: ProgressView,
) -> None:
    """Once a second: what the router holds and how many requests each version served."""
    last = {v: s.served for v, s in services.items()}
    last_at = time.monotonic()
    while True:
        await asyncio.sleep(1.0)
        now = time.monotonic()
        elapsed = max(1e-3, now - last_at)
        served = {v: s.served for v, s in services.items()}
        rates = {v: (served[v] - last[v]) / elapsed for v in served}
        last, last_at = served, now
        stats = users.stats
        sample = Traffic(
            time.time(), router.weight, rates[STABLE], rates[CANARY], stats.sent, stats.error_ratio
        )
        traffic.append(sample)
        view.traffic(sample)


async def _stop_load(users: LoadGenerator, task: asyncio.Task[Any]) -> None:
    users.stop()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
