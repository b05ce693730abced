"""The public API: one façade, a sorted ``__all__``, every name importable, nothing heavy at import."""

from __future__ import annotations

import subprocess
import sys

import canarypilot


def test_all_is_sorted_and_unique() -> None:
    assert canarypilot.__all__ == sorted(set(canarypilot.__all__))


def test_every_exported_name_resolves() -> None:
    for name in canarypilot.__all__:
        assert getattr(canarypilot, name) is not None, name


def test_exported_objects_come_from_the_module_the_facade_names() -> None:
    from canarypilot import _EXPORTS  # type: ignore[attr-defined]

    for name, module in _EXPORTS.items():
        assert getattr(canarypilot, name).__module__ == module, name


def test_unknown_names_raise_attribute_error() -> None:
    try:
        canarypilot.no_such_thing  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:
        raise AssertionError("an unknown attribute resolved")


def test_import_does_not_load_pydantic_or_httpx() -> None:
    code = "import sys, canarypilot; print(sorted(m for m in ('pydantic', 'httpx') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_dir_lists_the_public_names() -> None:
    assert dir(canarypilot) == canarypilot.__all__
