"""The fake clock every controller test starts from."""

from __future__ import annotations

import pytest

from canarypilot.clock import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1_000_000.0)
