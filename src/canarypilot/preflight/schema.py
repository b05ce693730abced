"""Which fields Argo Rollouts' CRDs know, so a misspelt field is caught before the API server prunes it.

The API server silently drops fields a CRD's structural schema does not declare:
the article's ``timeout: 15s`` on a Web metric vanishes and the call times out
after the default 10 s. ``argo_fields.json`` holds the field names (nothing
else) of the Rollout, AnalysisTemplate, ClusterAnalysisTemplate and AnalysisRun
schemas of Argo Rollouts 1.7.2 and 1.9.1 (Apache-2.0), merged; ``field_tree``
rebuilds it from CRD files, and a test keeps the two in sync.

A tree node is ``{"p": {name: node}, "i": node, "a": node, "*": 1}``: properties,
list items, map values, and "anything goes" (``x-kubernetes-preserve-unknown-fields``).
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Iterator
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

KINDS = ("Rollout", "AnalysisTemplate", "ClusterAnalysisTemplate", "AnalysisRun")

Node = dict[str, Any]
#: libyaml when available: the CRDs are ~200 kB each.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def compact(schema: dict[str, Any]) -> Node:
    """The field-name skeleton of one openAPIV3Schema node."""
    out: Node = {}
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        out["*"] = 1
    if isinstance(schema.get("properties"), dict):
        out["p"] = {name: compact(sub) for name, sub in sorted(schema["properties"].items())}
    if isinstance(schema.get("items"), dict):
        out["i"] = compact(schema["items"])
    if isinstance(schema.get("additionalProperties"), dict):
        out["a"] = compact(schema["additionalProperties"])
    return out


def merge(a: Node, b: Node) -> Node:
    """A tree accepting every field either tree accepts."""
    out: Node = {}
    if a.get("*") or b.get("*"):
        out["*"] = 1
    for key in ("i", "a"):
        if key in a or key in b:
            out[key] = merge(a.get(key, {}), b.get(key, {}))
    if "p" in a or "p" in b:
        pa, pb = a.get("p", {}), b.get("p", {})
        out["p"] = {name: merge(pa.get(name, {}), pb.get(name, {})) for name in sorted({*pa, *pb})}
    return out


def field_tree(crd_files: Iterable[Path]) -> dict[str, Node]:
    """Kind -> merged field tree, from CustomResourceDefinition YAML files."""
    trees: dict[str, Node] = {}
    for path in crd_files:
        crd = yaml.load(path.read_text(encoding="utf-8"), Loader=_LOADER)
        kind = crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            tree = compact(version["schema"]["openAPIV3Schema"])
            trees[kind] = merge(trees[kind], tree) if kind in trees else tree
    return dict(sorted(trees.items()))


@cache
def bundled() -> dict[str, Node]:
    """The shipped trees (Argo Rollouts 1.7.2 + 1.9.1)."""
    text = resources.files("canarypilot.preflight").joinpath("argo_fields.json").read_text(encoding="utf-8")
    data: dict[str, Node] = json.loads(text)["kinds"]
    return data


def unknown_fields(
    data: Any, tree: Node, path: tuple[str | int, ...] = ()
) -> Iterator[tuple[tuple[str | int, ...], list[str]]]:
    """``(path, close matches)`` of every field in ``data`` that ``tree`` does not declare."""
    if tree.get("*") or not tree:
        return
    if isinstance(data, dict):
        props = tree.get("p")
        for key, value in data.items():
            if props is not None and key in props:
                yield from unknown_fields(value, props[key], (*path, key))
            elif "a" in tree:
                yield from unknown_fields(value, tree["a"], (*path, key))
            elif props is not None:
                yield (*path, str(key)), difflib.get_close_matches(str(key), list(props), n=2, cutoff=0.6)
    elif isinstance(data, list) and "i" in tree:
        for index, item in enumerate(data):
            yield from unknown_fields(item, tree["i"], (*path, index))
