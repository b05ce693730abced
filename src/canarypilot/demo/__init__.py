"""``canarypilot demo``: a whole canary rollout on this machine, with nothing to install.

Two versions of a sample service (real HTTP servers on loopback), simulated
users, a traffic router (HAProxy or the embedded proxy), a metrics backend
(Prometheus or the embedded scraper) and the rollout controller, in compressed
time. ``run_demo`` is the entry point; ``SCENARIOS`` lists what can be shown.
"""

from canarypilot.demo.children import Backend
from canarypilot.demo.runner import DemoOptions, DemoResult, run_demo
from canarypilot.demo.scenarios import FAST, SCENARIOS, Behaviour, Expected, Pacing, Scenario

__all__ = [
    "FAST",
    "SCENARIOS",
    "Backend",
    "Behaviour",
    "DemoOptions",
    "DemoResult",
    "Expected",
    "Pacing",
    "Scenario",
    "run_demo",
]
