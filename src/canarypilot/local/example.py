"""A worked example on this machine: ``python -m canarypilot.local.example``.

It shows what ``canarypilot analyze`` decides for two canaries without any
cluster: a real Prometheus (Debian's package) starts on a free loopback port,
loaded through promtool with ten minutes of generated traffic for two services
— ``checkout``, whose canary is a little slower, and ``payments``, whose canary
regressed — then the very ``canarypilot analyze`` command runs against each
(table output), and Prometheus stops. Exit status 0 means both decisions were
the expected ones (checkout proceeds at a reduced weight, payments rolls back);
1 that one was not; 2 that Prometheus or promtool is missing.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from canarypilot._exceptions import CanaryPilotError
from canarypilot.local.prometheus import LocalPrometheus
from canarypilot.local.traffic import END, ServiceData, Traffic, openmetrics

#: Exit codes of ``canarypilot analyze`` by decision.
EXIT_CODES = {"proceed": 0, "hold": 3, "rollback": 4}

_STABLE_LATENCY = ((0.04, 0.97), (0.2, 0.03))


@dataclass(frozen=True)
class Case:
    """One service of the example and the decision it must get."""

    data: ServiceData
    expected: str
    story: str


CASES = (
    Case(
        ServiceData(
            "checkout",
            (
                Traffic("v1-stable", rps=40, latency=_STABLE_LATENCY, error_fraction=0.001),
                Traffic("v2-canary", rps=4, latency=((0.04, 0.965), (0.2, 0.035)), error_fraction=0.001),
            ),
            span_seconds=600,
        ),
        "proceed",
        "canary p99 a few percent slower, same error rate",
    ),
    Case(
        ServiceData(
            "payments",
            (
                Traffic("v1-stable", rps=40, latency=_STABLE_LATENCY, error_fraction=0.001),
                Traffic("v2-canary", rps=4, latency=((0.04, 0.90), (0.6, 0.10)), error_fraction=0.03),
            ),
            span_seconds=600,
        ),
        "rollback",
        "canary p99 several times slower and 3% of requests failing",
    ),
)


def analyze_command(url: str, service: str) -> list[str]:
    """``canarypilot analyze`` for ``service`` at the end of the generated data."""
    entry = "from canarypilot.cli import main; main()"
    return [
        sys.executable,
        "-c",
        entry,
        "analyze",
        "--prometheus",
        url,
        "--service",
        service,
        "--at",
        str(END),
    ]


def run(workdir: Path) -> bool:
    """Start Prometheus in ``workdir``, analyze every case, stop; True when all are as expected."""
    started = time.monotonic()
    with LocalPrometheus(workdir, openmetrics=openmetrics(*(c.data for c in CASES))) as prom:
        ready = time.monotonic() - started
        print(f"Prometheus {prom.url} ready in {ready:.1f}s, ten minutes of traffic loaded\n")
        outcomes = []
        for case in CASES:
            print(f"$ canarypilot analyze --prometheus {prom.url} --service {case.data.service}")
            print(f"  ({case.story})", flush=True)
            code = subprocess.run(analyze_command(prom.url, case.data.service), check=False).returncode
            got = next((status for status, c in EXIT_CODES.items() if c == code), f"exit {code}")
            outcomes.append((case, got))
            print()
    print("outcomes:")
    for case, got in outcomes:
        mark = "as expected" if got == case.expected else f"EXPECTED {case.expected}"
        print(f"  {case.data.service:<10} {got:<9} {mark}")
    return all(got == case.expected for case, got in outcomes)


def main() -> int:
    try:
        with tempfile.TemporaryDirectory(prefix="canarypilot-example-") as tmp:
            ok = run(Path(tmp))
    except CanaryPilotError as exc:
        print(f"canarypilot example: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("canarypilot example: interrupted", file=sys.stderr)
        return 130
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
