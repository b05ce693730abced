"""Helpers for a test module's ``xdist_subgroup`` (how ``make test`` spreads it over
workers: tests/conftest.py)."""

from __future__ import annotations

import pytest


def parameter(item: pytest.Item, name: str) -> str | None:
    """The value of the test's parameter ``name`` (a parametrized argument or fixture), if any."""
    callspec = getattr(item, "callspec", None)
    return None if callspec is None or name not in callspec.params else str(callspec.params[name])
