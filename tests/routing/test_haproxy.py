"""HAProxyRouter logic that needs no HAProxy: weights, addresses, hostile names."""

from __future__ import annotations

import pytest

from canarypilot._exceptions import ConfigError, RouterError
from canarypilot.routing.haproxy import TOTAL_WEIGHT, HAProxyRouter, RuntimeAddress


@pytest.mark.parametrize("weight", [0, 0.1, 5, 12.5, 33.3, 50, 99.9, 100])
def test_server_weights_add_up_and_stay_within_resolution(weight: float) -> None:
    stable, canary = HAProxyRouter.server_weights(weight)
    assert stable + canary == TOTAL_WEIGHT and min(stable, canary) >= 0
    assert abs(canary * 100 / TOTAL_WEIGHT - weight) <= 100 / TOTAL_WEIGHT / 2


def test_weights_outside_0_100_are_refused() -> None:
    with pytest.raises(RouterError):
        HAProxyRouter.server_weights(100.1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/run/haproxy/admin.sock", RuntimeAddress(path="/run/haproxy/admin.sock")),
        ("unix:///tmp/a.sock", RuntimeAddress(path="/tmp/a.sock")),
        ("tcp://127.0.0.1:9999", RuntimeAddress(host="127.0.0.1", port=9999)),
        ("localhost:9999", RuntimeAddress(host="localhost", port=9999)),
    ],
)
def test_runtime_addresses(text: str, expected: RuntimeAddress) -> None:
    assert RuntimeAddress.parse(text) == expected


@pytest.mark.parametrize("bad", ["app; shutdown sessions", "app\nset", "", "a b"])
def test_names_that_could_inject_runtime_commands_are_refused(bad: str) -> None:
    with pytest.raises(ConfigError):
        HAProxyRouter("/tmp/x.sock", backend=bad)


def test_bad_address_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="socket path or tcp://host:port"):
        HAProxyRouter("haproxy", backend="app")
