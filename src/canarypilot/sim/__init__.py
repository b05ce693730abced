"""Rollouts in virtual time: scenarios, a simulated world, competing strategies, the bench.

* ``scenario`` — the YAML format and its JSON Schema (``scenario.schema.json``);
* ``world`` — the requests each version serves per tick, drawn as counts;
* ``pipeline`` — client counters, scrapes and scrape lag into the embedded series store;
* ``strategies`` — the static ladder, Flagger, and canarypilot's own controller;
* ``engine`` — the virtual clock, the simulated router, one run (``simulate``);
* ``bench``, ``report``, ``charts`` — many runs, the targets, the tables and PNGs.

Nothing is imported here, so that loading one module does not load them all.
"""
