"""YAML text to Python objects, keeping the node tree so any field path maps to a line.

Rules of this module:
- Parsing uses libyaml (``CSafeLoader``): safe tags only, C speed. Each document is
  composed once; its plain object is built from that node, and the node is kept so
  ``LineIndex.line_of`` can answer lazily (no per-document line table is built up front).
- YAML 1.1 timestamps stay strings (Kubernetes treats them as strings); everything else
  is as PyYAML's safe loader resolves it.
- Duplicate keys in a mapping are reported (Kubernetes rejects them), never silently
  resolved to the last value.
- A document whose alias expansion would exceed ``MAX_EXPANDED_NODES`` or that refers to
  itself is refused, so a few hostile bytes cannot make validation run forever.
- Nothing here raises on bad input: errors come back as ``SourceError`` values.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_EXPANDED_NODES = 200_000

Path = tuple[str | int, ...]


class _Loader(yaml.CSafeLoader):
    """CSafeLoader without the timestamp resolver, recording duplicate keys."""

    yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.CSafeLoader.yaml_implicit_resolvers.items()
    }

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[ScalarNode] = []

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                if key_node.value in seen:
                    self.duplicates.append(key_node)
                seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class SourceError:
    """A problem with the text itself (syntax, duplicate key, hostile aliases)."""

    message: str
    line: int | None


@dataclass
class SourceDocument:
    """One non-empty YAML document: its plain value, its node tree, its first line."""

    value: Any
    node: Node
    line: int
    errors: list[SourceError] = field(default_factory=list)


class LineIndex:
    """Finds the line (1-based) of a field path inside one document's node tree."""

    __slots__ = ("_node",)

    def __init__(self, node: Node | None) -> None:
        self._node = node

    @property
    def line(self) -> int | None:
        return None if self._node is None else self._node.start_mark.line + 1

    def child(self, path: Path) -> LineIndex:
        """The index rooted at ``path`` (for ``kind: List`` items)."""
        node = self._find(path, exact=True)
        return LineIndex(node)

    def line_of(self, path: Path, exact: bool = False) -> int | None:
        """Line of ``path``; for a mapping entry, the line of its key.

        Without ``exact``, a path that does not exist (a missing field) gives the line of
        its deepest existing parent, which is where the user has to add it.
        """
        node = self._find(path, exact=exact, key_line=True)
        return None if node is None else node.start_mark.line + 1

    def _find(self, path: Path, exact: bool, key_line: bool = False) -> Node | None:
        node = self._node
        found = node
        for i, part in enumerate(path):
            last = i == len(path) - 1
            nxt: Node | None = None
            if isinstance(node, MappingNode):
                for key_node, value_node in node.value:
                    if isinstance(key_node, ScalarNode) and key_node.value == part:
                        nxt = key_node if (last and key_line) else value_node
                        break
            elif (
                isinstance(node, SequenceNode)
                and isinstance(part, int)
                and 0 <= part < len(node.value)
            ):
                nxt = node.value[part]
            if nxt is None:
                return None if exact else found
            node = found = nxt
        return found


def iter_documents(text: str) -> Iterator[SourceDocument | SourceError]:
    """Every non-empty document of ``text``, then at most one error that ended parsing."""
    loader = _Loader(text)
    check_aliases = "&" in text or "*" in text
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            errors: list[SourceError] = []
            if check_aliases:
                guard = _alias_guard(node)
                if guard is not None:
                    yield SourceError(guard, node.start_mark.line + 1)
                    continue
            value = loader.construct_document(node)
            errors.extend(
                SourceError(f"duplicate key {d.value!r} in mapping", d.start_mark.line + 1)
                for d in loader.duplicates
            )
            loader.duplicates.clear()
            if value is None:
                continue
            yield SourceDocument(value, node, node.start_mark.line + 1, errors)
    except yaml.MarkedYAMLError as exc:
        yield SourceError(_describe(exc), _mark_line(exc))
    except yaml.YAMLError as exc:
        yield SourceError(f"invalid YAML: {exc}", _position_line(exc, text))
    except RecursionError:
        yield SourceError("invalid YAML: nested too deeply", None)
    finally:
        loader.dispose()


def _describe(exc: yaml.MarkedYAMLError) -> str:
    parts = [p for p in (exc.context, exc.problem) if p]
    return "invalid YAML: " + ("; ".join(parts) if parts else str(exc))


def _mark_line(exc: yaml.MarkedYAMLError) -> int | None:
    mark = exc.problem_mark or exc.context_mark
    return None if mark is None else mark.line + 1


def _position_line(exc: yaml.YAMLError, text: str) -> int | None:
    position = getattr(exc, "position", None)
    if isinstance(position, int):
        return text.count("\n", 0, position) + 1
    return None


def _alias_guard(root: Node) -> str | None:
    """Why this document must be refused (self-reference, alias bomb), or None."""
    sizes: dict[int, int] = {}
    active: set[int] = set()
    # Iterative post-order walk: aliases share node objects, so sizes are memoised by id.
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            active.discard(key)
            total = 1
            for child in _children(node):
                total += sizes[id(child)]
            if total > MAX_EXPANDED_NODES:
                return f"document too large after alias expansion (over {MAX_EXPANDED_NODES} nodes)"
            sizes[key] = total
            continue
        if key in sizes:
            continue
        if key in active:
            return "a YAML alias refers to a node that contains it (recursive document)"
        active.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in active:
                return "a YAML alias refers to a node that contains it (recursive document)"
            if id(child) not in sizes:
                stack.append((child, False))
    return None


def _children(node: Node) -> list[Node]:
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, SequenceNode):
        return list(node.value)
    return []
