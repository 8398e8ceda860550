"""YAML text to plain Python objects, with a line for every field path.

Rules of this module:
- Parsing uses libyaml (PyYAML's ``CParser``), composing one document at a time. Its
  resolver does nothing per node; ``_Builder`` makes plain values in one pass and types
  only plain scalars that may be null/bool/int/float (with PyYAML's safe rules), which is
  what keeps 10,000 documents fast. Nodes are dropped after the pass.
- Lines are found lazily: a document keeps only where it sits in the text, and its line
  tree (``LineIndex``) is built by parsing that slice again the first time a problem asks
  for a line. Most documents never have a problem, and holding a tree per document cost
  a third of decoding time and memory (the garbage collector walks every tree).
- Only the core tags are accepted (str, int, float, bool, null, seq, map, merge keys);
  YAML 1.1 timestamps stay strings (Kubernetes treats them as strings).
- Duplicate keys in a mapping are reported (Kubernetes rejects them), never silently
  resolved to the last value.
- A document whose alias expansion would exceed ``MAX_EXPANDED_NODES`` or that refers to
  itself is refused, so a few hostile bytes cannot make validation run forever.
- JSON text (``iter_json_documents``) is parsed by a strict JSON parser, not as YAML:
  YAML would accept a trailing comma or a comment that kubectl refuses. Its lines come
  from the same lazy line index.
- Nothing here raises on bad input: errors come back as ``SourceError`` values.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.cyaml import CParser  # type: ignore[attr-defined]
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import BaseResolver

MAX_EXPANDED_NODES = 200_000

Path = tuple[str | int, ...]

_YAML = "tag:yaml.org,2002:"
_PLAIN = "tag:meshgate:plain"  # resolved later, only if the scalar may be non-string
_STR, _SEQ, _MAP = _YAML + "str", _YAML + "seq", _YAML + "map"
_TYPED = frozenset(_YAML + t for t in ("null", "bool", "int", "float"))
# PyYAML's safe implicit resolvers, minus timestamps (Kubernetes keeps them as strings)
# and minus merge (handled as a key) and the "value"/"yaml" tags (no safe constructor).
_IMPLICIT: dict[str | None, list[tuple[str, re.Pattern[str]]]] = {
    first: [(tag, rx) for tag, rx in resolvers if tag in _TYPED]
    for first, resolvers in yaml.resolver.Resolver.yaml_implicit_resolvers.items()
}
# A plain scalar starting with any other character is a string (the resolvers are keyed
# by first character), which settles most keys and values without a regex.
_MAYBE_TYPED = frozenset(first for first, resolvers in _IMPLICIT.items() if first and resolvers)
_MISSING = object()
_CONSTRUCT = yaml.constructor.SafeConstructor.yaml_constructors
_CONSTRUCTOR = yaml.constructor.SafeConstructor()
# What libyaml counts as a line break (marks count lines by these, not by str.splitlines).
_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")


class _Loader(CParser, BaseResolver):  # type: ignore[misc]
    """libyaml composition with a near-free resolver: typing happens in ``_Builder``."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        # libyaml's composer calls these two around every node; we use no path resolvers,
        # so C callables that ignore their arguments replace two Python calls per node.
        self.descend_resolver = {}.get  # type: ignore[method-assign, assignment]
        self.ascend_resolver = tuple  # type: ignore[method-assign, assignment]

    def resolve(self, kind: type[Node], value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is ScalarNode:
            return _PLAIN if implicit[0] else _STR
        return _SEQ if kind is SequenceNode else _MAP


class NodeError(Exception):
    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


# A line tree mirrors a document: for a mapping, key -> (key line, value line, subtree);
# for a sequence, a list of (line, subtree); None for a scalar.
LineTree = dict[Any, tuple[int, int, Any]] | list[tuple[int, Any]] | None
_MapLines = dict[Any, tuple[int, int, Any]]


def _scalar(node: ScalarNode) -> Any:
    tag, value = node.tag, node.value
    if tag == _STR:
        return value
    if tag == _PLAIN:
        if value.isascii() and value.isdigit() and (value[0] != "0" or value == "0"):
            return int(value)  # the common case, without YAML 1.1's octal/sexagesimal
        resolvers = _IMPLICIT.get(value[0] if value else "", [])
        for candidate, rx in resolvers + _IMPLICIT.get(None, []):
            if rx.match(value):
                tag = candidate
                break
        else:
            return value
    if tag in _TYPED:
        try:
            return _CONSTRUCT[tag](_CONSTRUCTOR, ScalarNode(tag, value))
        except (ValueError, IndexError, KeyError, TypeError, OverflowError, yaml.YAMLError) as exc:
            # PyYAML's constructors raise all of these on odd input (`!!int ""`, `!!bool x`).
            raise NodeError(f"invalid {tag[len(_YAML) :]} {value!r}", _line(node)) from exc
    raise NodeError(f"unsupported YAML tag {tag!r}", _line(node))


def _is_merge(key: ScalarNode) -> bool:
    return key.tag == _PLAIN and key.value == "<<"


def _merge_nodes(node: Node) -> list[MappingNode]:
    if isinstance(node, MappingNode):
        return [node]
    if isinstance(node, SequenceNode) and all(isinstance(n, MappingNode) for n in node.value):
        return list(node.value)
    raise NodeError("a merge key (<<) needs a mapping or a list of mappings", _line(node))


class _Builder:
    """Turns one composed node into plain Python values (no lines: see ``_LineBuilder``)."""

    __slots__ = ("_plain", "duplicates")

    def __init__(self, plain: dict[str, Any] | None = None) -> None:
        self.duplicates: list[tuple[str, int]] = []
        # Typed plain scalars seen so far ("80", "true", "null"...), shared across the
        # documents of one text: the same few keys and values recur in every document.
        self._plain = {} if plain is None else plain

    def value(self, node: Node) -> Any:
        # Exact class checks and the str fast paths: this runs once per node.
        cls = node.__class__
        if cls is ScalarNode:
            tag = node.tag
            if tag == _STR:
                return node.value
            if tag == _PLAIN:
                text = node.value
                if text and text[0] not in _MAYBE_TYPED:
                    return text
                return self.plain(node)  # type: ignore[arg-type]
            return _scalar(node)  # type: ignore[arg-type]
        if cls is MappingNode:
            return self.mapping(node)  # type: ignore[arg-type]
        if cls is SequenceNode:
            if node.tag != _SEQ:
                raise NodeError(f"unsupported YAML tag {node.tag!r}", _line(node))
            value = self.value
            return [value(child) for child in node.value]
        raise NodeError("unsupported YAML node", _line(node))

    def plain(self, node: ScalarNode) -> Any:
        found = self._plain.get(node.value, _MISSING)
        if found is _MISSING:
            found = self._plain[node.value] = _scalar(node)
        return found

    def mapping(self, node: MappingNode) -> dict[Any, Any]:
        if node.tag != _MAP:
            raise NodeError(f"unsupported YAML tag {node.tag!r}", _line(node))
        out: dict[Any, Any] = {}
        merged: list[MappingNode] = []
        value = self.value
        for key_node, value_node in node.value:
            if key_node.__class__ is not ScalarNode:
                raise NodeError("a mapping key must be a scalar", _line(key_node))
            tag, key = key_node.tag, key_node.value
            if tag == _PLAIN and (not key or key[0] in _MAYBE_TYPED):
                key = self.plain(key_node)
            elif tag != _STR and tag != _PLAIN:
                key = _scalar(key_node)
            elif key == "<<" and tag == _PLAIN:
                merged.extend(_merge_nodes(value_node))
                continue
            if key in out:
                self.duplicates.append((str(key), _line(key_node)))
            out[key] = value(value_node)
        for source in merged:
            for key, item in self.mapping(source).items():
                out.setdefault(key, item)
        return out


class _LineBuilder:
    """Turns one composed node into its value and its line tree (lines shifted by
    ``offset``, for a document parsed out of the middle of a text)."""

    __slots__ = ("offset",)

    def __init__(self, offset: int = 0) -> None:
        self.offset = offset

    def build(self, node: Node) -> tuple[Any, LineTree]:
        if isinstance(node, ScalarNode):
            return _scalar(node), None
        if isinstance(node, SequenceNode):
            if node.tag != _SEQ:
                raise NodeError(f"unsupported YAML tag {node.tag!r}", _line(node))
            values: list[Any] = []
            lines: list[tuple[int, Any]] = []
            for child in node.value:
                value, tree = self.build(child)
                values.append(value)
                lines.append((_line(child) + self.offset, tree))
            return values, lines
        if isinstance(node, MappingNode):
            if node.tag != _MAP:
                raise NodeError(f"unsupported YAML tag {node.tag!r}", _line(node))
            return self.mapping(node)
        raise NodeError("unsupported YAML node", _line(node))

    def mapping(self, node: MappingNode) -> tuple[dict[Any, Any], _MapLines]:
        out: dict[Any, Any] = {}
        lines: _MapLines = {}
        merged: list[tuple[dict[Any, Any], _MapLines]] = []
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                raise NodeError("a mapping key must be a scalar", _line(key_node))
            if _is_merge(key_node):
                merged.extend(self.mapping(n) for n in _merge_nodes(value_node))
                continue
            key = _scalar(key_node)
            value, tree = self.build(value_node)
            out[key] = value
            lines[key] = (_line(key_node) + self.offset, _line(value_node) + self.offset, tree)
        for values, trees in merged:
            for key, value in values.items():
                if key not in out:
                    out[key] = value
                    lines[key] = trees[key]
        return out, lines


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


@dataclass(frozen=True)
class SourceError:
    """A problem with the text itself (syntax, duplicate key, hostile aliases)."""

    message: str
    line: int | None


@dataclass
class SourceDocument:
    """One non-empty YAML document: its plain value, its line tree, its first line."""

    value: Any
    lines: LineIndex
    line: int
    errors: list[SourceError] = field(default_factory=list)


class _Text:
    """A parsed text, shared by its documents' lazy line indexes."""

    __slots__ = ("_starts", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._starts: list[int] | None = None

    def _line_starts(self) -> list[int]:
        if self._starts is None:
            self._starts = [0, *(m.end() for m in _BREAK.finditer(self.text))]
        return self._starts

    def position(self, offset: int) -> tuple[int, int]:
        """The 0-based line and column of a character offset, as libyaml counts them."""
        starts = self._line_starts()
        line = bisect.bisect_right(starts, offset) - 1
        return line, offset - starts[line]

    def lines(self, first: int, last: int) -> str:
        """Lines ``first`` to ``last`` (0-based, inclusive) with their breaks."""
        starts = self._line_starts()
        if first >= len(starts):
            return ""
        end = starts[last + 1] if last + 1 < len(starts) else len(self.text)
        return self.text[starts[first] : end]


@dataclass(frozen=True, slots=True)
class _Deferred:
    """Where a document's root node sits, to build its line tree when first needed."""

    source: _Text
    first: int  # 0-based line and column where the root node starts
    column: int
    last: int  # 0-based line where it ends
    size: int  # entries of the root mapping, to check the rebuilt tree against

    def build(self) -> LineTree:
        # The root's first line may hold `---` or properties before it: blanking them keeps
        # every column, so the slice parses exactly as the node did in place.
        head = self.source.lines(self.first, self.first)
        snippet = " " * self.column + head[self.column :]
        snippet += self.source.lines(self.first + 1, self.last)
        loader = _Loader(snippet)
        try:
            node = loader.get_node() if loader.check_node() else None
            if node is None:
                return None
            _, tree = _LineBuilder(self.first).build(node)
        except (yaml.YAMLError, NodeError, RecursionError):
            return None
        finally:
            loader.dispose()
        if not isinstance(tree, dict) or len(tree) != self.size:
            return None  # not the same node: answer with the document's first line only
        return tree


class LineIndex:
    """Finds the line (1-based) of a field path inside one document."""

    __slots__ = ("_deferred", "_line", "_tree")

    def __init__(self, line: int | None = None, tree: LineTree = None) -> None:
        self._line = line
        self._tree = tree
        self._deferred: _Deferred | None = None

    @classmethod
    def _lazy(cls, line: int, deferred: _Deferred) -> LineIndex:
        index = cls(line)
        index._deferred = deferred
        return index

    @property
    def line(self) -> int | None:
        return self._line

    def child(self, path: Path) -> LineIndex:
        """The index rooted at ``path`` (for ``kind: List`` items)."""
        found = self._walk(path)
        if found is None or len(found[0]) != len(path):
            return LineIndex(None)
        return LineIndex(found[2], found[3])

    def line_of(self, path: Path, exact: bool = False) -> int | None:
        """Line of ``path``; for a mapping entry, the line of its key.

        Without ``exact``, a path that does not exist (a missing field) gives the line of
        its deepest existing parent, which is where the user has to add it.
        """
        found = self._walk(path)
        if found is None:
            return None
        walked, key_line, _, _ = found
        if exact and len(walked) != len(path):
            return None
        return key_line

    def _walk(self, path: Path) -> tuple[Path, int, int, LineTree] | None:
        if self._line is None:
            return None
        if self._deferred is not None:
            self._tree, self._deferred = self._deferred.build(), None
        key_line = value_line = self._line
        tree = self._tree
        walked: list[str | int] = []
        for part in path:
            if isinstance(tree, dict) and part in tree:
                key_line, value_line, tree = tree[part]
            elif isinstance(tree, list) and isinstance(part, int) and 0 <= part < len(tree):
                value_line, tree = tree[part]
                key_line = value_line
            else:
                break
            walked.append(part)
        return tuple(walked), key_line, value_line, tree


def iter_documents(text: str) -> Iterator[SourceDocument | SourceError]:
    """Every non-empty document of ``text``, then at most one error that ended parsing."""
    loader = _Loader(text)
    check_aliases = "&" in text
    source = _Text(text)
    plain: dict[str, Any] = {}
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            if check_aliases:
                guard = _alias_guard(node)
                if guard is not None:
                    yield SourceError(guard, _line(node))
                    continue
            builder = _Builder(plain)
            try:
                value = builder.value(node)
            except NodeError as exc:
                yield SourceError(exc.message, exc.line)
                continue
            if value is None:
                continue
            errors = [
                SourceError(f"duplicate key {k!r} in mapping", n) for k, n in builder.duplicates
            ]
            start, end = node.start_mark, node.end_mark
            if isinstance(value, dict):
                deferred = _Deferred(source, start.line, start.column, end.line, len(value))
                lines = LineIndex._lazy(start.line + 1, deferred)
            else:
                lines = LineIndex(start.line + 1)  # not a resource: only its line is asked
            yield SourceDocument(value, lines, start.line + 1, errors)
    except yaml.MarkedYAMLError as exc:
        yield SourceError(_describe(exc), _mark_line(exc))
    except yaml.YAMLError as exc:
        yield SourceError(f"invalid YAML: {exc}", _position_line(exc, text))
    except RecursionError:
        yield SourceError("invalid YAML: nested too deeply", None)
    finally:
        loader.dispose()


def iter_json_documents(text: str) -> Iterator[SourceDocument | SourceError]:
    """Every value of a strict JSON text (several may follow each other, as kubectl reads a
    JSON stream), then at most one error that ended parsing.

    Strict means what JSON allows and nothing more: a trailing comma, a comment, a single
    quote or NaN is a syntax error with its line, as kubectl refuses it. Lines of fields
    come from the same lazy index as YAML's (JSON text parses as YAML for that).
    """
    source = _Text(text)
    pos = _skip_space(text, 0)
    duplicates: list[str] = []  # keys repeated in the value being decoded
    decoder = json.JSONDecoder(
        object_pairs_hook=lambda pairs: _json_object(pairs, duplicates),
        parse_constant=_refuse_constant,
    )
    while pos < len(text):
        duplicates.clear()
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            yield SourceError(f"invalid JSON: {_json_reason(exc)} (column {exc.colno})", exc.lineno)
            return
        except ValueError as exc:  # a NaN or Infinity constant
            yield SourceError(f"invalid JSON: {exc}", source.position(pos)[0] + 1)
            return
        except RecursionError:
            yield SourceError("invalid JSON: nested too deeply", source.position(pos)[0] + 1)
            return
        first, column = source.position(pos)
        last = source.position(end - 1)[0]
        errors = [
            SourceError(f"duplicate key {k!r} in mapping", _json_key_line(source, pos, end, k))
            for k in duplicates
        ]
        if isinstance(value, dict):
            deferred = _Deferred(source, first, column, last, len(value))
            lines = LineIndex._lazy(first + 1, deferred)
        else:
            lines = LineIndex(first + 1)
        if value is not None:
            yield SourceDocument(value, lines, first + 1, errors)
        pos = _skip_space(text, end)


def _json_reason(exc: json.JSONDecodeError) -> str:
    """The parser's reason, naming the commonest mistake (a trailing comma) for what it is."""
    here = exc.doc[exc.pos : exc.pos + 1]
    before = exc.doc[: exc.pos].rstrip(" \t\r\n")
    if here in ("]", "}") and before.endswith(","):
        return f"trailing comma before {here!r}"
    return exc.msg


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _json_object(pairs: list[tuple[str, Any]], duplicates: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            duplicates.append(key)
        out[key] = value
    return out


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _json_key_line(source: _Text, start: int, end: int, key: str) -> int:
    """The line of the last ``"key":`` between start and end (the repeated one)."""
    spelled = re.escape(json.dumps(key, ensure_ascii=False)) + r"\s*:"
    matches = list(re.finditer(spelled, source.text[start:end]))
    return source.position(start + (matches[-1].start() if matches else 0))[0] + 1


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
