"""Reading manifests: files, directories and stdin; multi-document YAML; line numbers kept.

Every document is kept with the line of each field so a finding can point at
``rollout.yaml:62``. Invalid YAML and unreadable paths are ``ConfigError``s that
name the file and the line (preflight exits 2); documents that are not
Kubernetes objects (no ``kind``) are skipped.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from canarypilot._exceptions import ConfigError
from canarypilot.policy.documents import compose_all, construct

#: Files larger than this are refused: manifests are small.
MAX_FILE_BYTES = 5 * 1024 * 1024
SUFFIXES = (".yaml", ".yml", ".json")

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Manifest:
    """One Kubernetes object from one document of one file."""

    source: str
    index: int
    data: dict[str, Any]
    lines: dict[Path_, int]

    @property
    def kind(self) -> str:
        return str(self.data.get("kind", ""))

    @property
    def api_version(self) -> str:
        return str(self.data.get("apiVersion", ""))

    @property
    def metadata(self) -> dict[str, Any]:
        meta = self.data.get("metadata")
        return meta if isinstance(meta, dict) else {}

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", f"<document {self.index + 1}>"))

    @property
    def namespace(self) -> str | None:
        ns = self.metadata.get("namespace")
        return str(ns) if ns is not None else None

    @property
    def annotations(self) -> dict[str, str]:
        ann = self.metadata.get("annotations")
        return {str(k): str(v) for k, v in ann.items()} if isinstance(ann, dict) else {}

    @property
    def ref(self) -> str:
        """``Rollout production/payment-api``."""
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"

    def get(self, *path: str | int) -> Any:
        """The value at ``path``, or None when any step is missing."""
        node: Any = self.data
        for part in path:
            if isinstance(part, int):
                if not isinstance(node, list) or part >= len(node):
                    return None
            elif not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node

    def line(self, path: Sequence[str | int]) -> int:
        """The line of ``path`` or of its nearest ancestor that exists."""
        parts = tuple(path)
        while parts:
            if parts in self.lines:
                return self.lines[parts]
            parts = parts[:-1]
        return self.lines.get((), 1)


def load_paths(paths: Sequence[str | Path]) -> list[Manifest]:
    """Every manifest in ``paths`` (files, directories searched recursively, ``-`` for stdin)."""
    out: list[Manifest] = []
    for raw in paths:
        if str(raw) == "-":
            out += parse_text(sys.stdin.read(), "<stdin>")
            continue
        path = Path(raw)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in SUFFIXES)
            if not files:
                raise ConfigError(f"{path}: no .yaml, .yml or .json files in this directory")
        elif path.exists():
            files = [path]
        else:
            raise ConfigError(f"{path}: no such file or directory")
        for file in files:
            out += parse_text(_read(file), str(file))
    if not out:
        # Checking nothing is not a clean bill of health: say so, as for an empty directory.
        given = ", ".join(str(p) for p in paths)
        raise ConfigError(f"{given}: no Kubernetes objects (documents with apiVersion and kind) to check")
    return out


def _read(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ConfigError(f"{path}: larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB, not a manifest")
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc


def parse_text(text: str, source: str) -> list[Manifest]:
    """The Kubernetes objects in a multi-document YAML (or JSON) text.

    Nesting and the size once aliases are expanded are bounded for the whole text
    (see :mod:`canarypilot.policy.documents`), so every item of a ``kind: List``
    shares one budget.
    """
    out: list[Manifest] = []
    for index, node in enumerate(compose_all(text, source)):
        where = f"{source}:{node.start_mark.line + 1}"
        data = construct(node, where)
        if isinstance(data, dict) and data.get("kind") == "List" and isinstance(data.get("items"), list):
            items = node_value(node, "items")
            for i, item in enumerate(data["items"]):
                if isinstance(item, dict) and "kind" in item and isinstance(items, yaml.SequenceNode):
                    out.append(Manifest(source, index, item, _lines(items.value[i])))
            continue
        if isinstance(data, dict) and "kind" in data:
            out.append(Manifest(source, index, data, _lines(node)))
    return out


def node_value(node: yaml.Node, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key and isinstance(v, yaml.Node):
                return v
    return None


def _lines(node: yaml.Node) -> dict[Path_, int]:
    # Bounded by compose_all's budget on the expanded size of the whole file.
    lines: dict[Path_, int] = {}

    def walk(n: yaml.Node, path: Path_) -> None:
        lines[path] = n.start_mark.line + 1
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                if isinstance(k, yaml.ScalarNode):
                    lines[(*path, k.value)] = k.start_mark.line + 1
                    walk(v, (*path, k.value))
                    lines[(*path, k.value)] = k.start_mark.line + 1
        elif isinstance(n, yaml.SequenceNode):
            for i, item in enumerate(n.value):
                walk(item, (*path, i))

    walk(node, ())
    return lines
