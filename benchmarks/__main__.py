"""Run every benchmark (or the ones named): ``python -m benchmarks [topic ...]``."""

from __future__ import annotations

import importlib
import pkgutil
import platform
import sys
import time
from pathlib import Path


def _machine() -> str:
    cpus = len(__import__("os").sched_getaffinity(0))
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {cpus} cores, Python {platform.python_version()}, {platform.system()}"


def main(argv: list[str]) -> int:
    names = sorted(
        m.name[len("bench_") :]
        for m in pkgutil.iter_modules([str(Path(__file__).parent)])
        if m.name.startswith("bench_")
    )
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        print("topics:", ", ".join(names))
        return 0
    wanted = [a for a in argv if not a.startswith("-")] or names
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(names)}", file=sys.stderr)
        return 2
    print(f"machine: {_machine()}")
    for name in wanted:
        print(f"\n== {name} ==", flush=True)
        started = time.perf_counter()
        importlib.import_module(f"benchmarks.bench_{name}").run([a for a in argv if a.startswith("-")])
        print(f"({name}: {time.perf_counter() - started:.1f}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
