"""How `make test` spreads the suite over its workers (pytest-xdist, ``--dist loadgroup``).

Most of the suite's wall time is real time: rollouts through nginx and HAProxy, control
planes waiting on Argo's and the operator's loops, with the CPU mostly idle. Workers
overlap that waiting. Each test module runs whole on one worker, in its order, so its
module-scoped servers (a Prometheus, a control plane) start once and its tests see them
as they do in a serial run. A module with a ``xdist_subgroup(item)`` function is split
into the groups it names (``None``: the module's own group), each run whole on one
worker: the Argo versions' control planes side by side, the demo's scenarios, the
operator's cases in two halves of about five minutes each.

Without xdist (``pytest -p no:xdist``, or a plain ``pytest`` on one test) nothing changes.

xdist passes a test's group to its scheduler as a suffix on the node id (``…::test@group``).
pytest 9.2 broke that silently (pytest-dev/pytest-xdist#1386): the tests of a module were
spread over workers, a module's server started on each, and a test that reads what an
earlier one left failed. So the run stops (exit 4) when a worker's collection comes back
without the suffixes.
"""

from __future__ import annotations

import pytest


@pytest.hookimpl(tryfirst=True)  # before xdist appends the group to each test's id
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.pluginmanager.hasplugin("xdist"):
        return
    for item in items:
        group = item.nodeid.split("::", 1)[0]
        subgroup = getattr(getattr(item, "module", None), "xdist_subgroup", None)
        part = subgroup(item) if callable(subgroup) else None
        if part is not None:
            group += f"[{part}]"
        item.add_marker(pytest.mark.xdist_group(group))


@pytest.hookimpl(optionalhook=True)  # an xdist hook, on the controller: absent without xdist
def pytest_xdist_node_collection_finished(node: object, ids: list[str]) -> None:
    # Every test gets a group above, so under loadgroup every id must carry its suffix.
    config = getattr(node, "config", None)
    if not isinstance(config, pytest.Config) or config.getoption("dist", None) != "loadgroup":
        return
    ungrouped = next((nodeid for nodeid in ids if "@" not in nodeid.rsplit("::", 1)[-1]), None)
    if ungrouped is not None:
        pytest.exit(
            f"--dist loadgroup is not grouping ({ungrouped} has no @group suffix): this "
            "pytest and pytest-xdist do not work together; see tests/conftest.py",
            returncode=pytest.ExitCode.USAGE_ERROR,
        )
