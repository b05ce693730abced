"""Reading YAML that may be hostile: every file canarypilot reads goes through here.

PyYAML's safe loader is safe from code execution, not from size or surprise:

* **Depth.** Its composer recurses once per nesting level, so a file of 50,000
  ``[`` raises ``RecursionError`` (a crash, not an error message). Nesting stops
  at :data:`MAX_DEPTH`.
* **Aliases.** ``*name`` reuses a node; a few kilobytes of aliases to aliases
  expand into gigabytes once walked (a "billion laughs"). The size of a file once
  its aliases are expanded is counted without expanding them, for the whole file
  at once, and stops at :data:`MAX_NODES`; nodes are counted while they are
  built too, so a large file without aliases stops there instead of being read
  whole first.
* **Duplicate keys.** YAML says a mapping's keys are unique; PyYAML keeps the last.
  A threshold written twice must not silently mean the second one.

Every problem is a :class:`ConfigError` naming the source and the line.
"""

from __future__ import annotations

from typing import Any

import yaml

from canarypilot._exceptions import ConfigError

#: Nesting levels a document may have: configuration and manifests need a dozen or two.
MAX_DEPTH = 200
#: Nodes a whole file may hold once its aliases are expanded.
MAX_NODES = 200_000

_MERGE_TAG = "tag:yaml.org,2002:merge"


class SafeLoader(yaml.SafeLoader):
    """A safe loader that bounds nesting and refuses duplicate mapping keys."""

    _depth = 0
    _composed = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        # Counted as they are built, so a large plain file stops at the limit instead of
        # being composed whole first (aliases count once here, expanded afterwards).
        self._composed += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise yaml.composer.ComposerError(
                    None, None, f"nested more than {MAX_DEPTH} levels deep", mark
                )
            if self._composed > MAX_NODES:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise yaml.composer.ComposerError(None, None, f"more than {MAX_NODES} YAML nodes", mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[tuple[str, str]] = set()
        for key, _ in node.value:
            if isinstance(key, yaml.ScalarNode) and key.tag != _MERGE_TAG:
                identity = (key.tag, key.value)
                if identity in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key.value!r}", key.start_mark
                    )
                seen.add(identity)
        return super().construct_mapping(node, deep=deep)


def expanded_size(nodes: list[yaml.Node]) -> int:
    """Nodes in ``nodes`` once every alias is expanded, counted in time linear in the file."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        total = 1
        if isinstance(node, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            total += sum(size(item) for item in node.value)
        sizes[id(node)] = total
        return total

    return sum(size(node) for node in nodes)


def compose_all(text: str, source: str) -> list[yaml.Node]:
    """The node trees of every document in ``text``, bounded in depth and in expanded size."""
    try:
        nodes = [node for node in yaml.compose_all(text, Loader=SafeLoader) if node is not None]
    except yaml.YAMLError as exc:
        raise yaml_error(exc, source) from None
    if expanded_size(nodes) > MAX_NODES:
        raise ConfigError(
            f"{source}: more than {MAX_NODES} YAML nodes once aliases are expanded; refusing to read it"
        )
    return nodes


def construct(node: yaml.Node, source: str) -> Any:
    """The Python value of one composed document (duplicate keys refused)."""
    try:
        return SafeLoader("").construct_document(node)
    except yaml.YAMLError as exc:
        raise yaml_error(exc, source) from None


def load_yaml(text: str, source: str) -> Any:
    """The value of a one-document YAML text (``None`` when empty), or ``ConfigError``.

    >>> load_yaml("slo: {max_error_delta: 0.02}", "settings")
    {'slo': {'max_error_delta': 0.02}}
    >>> load_yaml("a: 1\\na: 2", "settings")
    Traceback (most recent call last):
    canarypilot._exceptions.ConfigError: settings:2: invalid YAML: duplicate key 'a'
    """
    nodes = compose_all(text, source)
    if len(nodes) > 1:
        raise ConfigError(f"{source}: holds {len(nodes)} YAML documents; expected one")
    return construct(nodes[0], source) if nodes else None


def yaml_error(exc: yaml.YAMLError, source: str) -> ConfigError:
    """One line naming the source, the line and the problem."""
    return ConfigError(f"{source}{_line(exc)}: invalid YAML: {_problem(exc)}")


def _line(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        if mark is not None:
            return f":{mark.line + 1}"
    return ""


def _problem(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem:
        return exc.problem
    return str(exc)
