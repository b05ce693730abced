"""canarypilot's benchmarks. Run them all with ``python -m benchmarks`` (``make bench``).

Each ``bench_<topic>.py`` module defines ``run(argv: list[str]) -> None`` that
measures side by side in one run and prints a table; results and the machine's
description go into docs/benchmarks.md.
"""
