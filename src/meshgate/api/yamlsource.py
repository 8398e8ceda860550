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
- Every line handed out (a problem's, a document's, a field's) is 1-based and is a line of
  the text as an editor shows it: lines end at ``\r\n``, ``\r`` or ``\n`` (YAML 1.2's line
  breaks), and at nothing else. libyaml follows YAML 1.1, which also ends lines at NEL, LS
  and PS (U+0085, U+2028, U+2029), and its marks count those; they are translated
  (``_Text.line``), so such a character inside a string never moves the lines after it.
  A last line without a break is a line; the empty end after a final break is not, so an
  error at the end of the text (libyaml marks it one line past a text without a final
  break) is on the text's last line. A leading BOM is no character of line 1 (JSON skips
  it, as YAML does).
- Nothing here raises on bad input: errors come back as ``SourceError`` values, with the
  line of the offending character for a character YAML or JSON text cannot hold (a control
  character such as NUL, or a lone surrogate, which no UTF-8 text can carry).
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
from yaml.reader import ReaderError
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
# A *row* is a 0-based line as libyaml counts them: its marks count rows, and the slices
# that ``_Deferred`` parses again are cut at rows (not at str.splitlines, which has more).
_ROW_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")
# A *line* is 1-based and ends where an editor ends it: every line handed out is one.
_LINE_BREAK = re.compile("\r\n|[\r\n]")
# Row breaks that end no line: a text without them has its rows and lines alike.
_ROW_ONLY = re.compile("[\x85\u2028\u2029]")
_BOM = "\ufeff"


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
    def __init__(self, message: str, row: int) -> None:
        super().__init__(message)
        self.message = message
        self.row = row


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
            raise NodeError(f"invalid {tag[len(_YAML) :]} {value!r}", _row(node)) from exc
    raise NodeError(f"unsupported YAML tag {tag!r}", _row(node))


def _is_merge(key: ScalarNode) -> bool:
    return key.tag == _PLAIN and key.value == "<<"


def _merge_nodes(node: Node) -> list[MappingNode]:
    if isinstance(node, MappingNode):
        return [node]
    if isinstance(node, SequenceNode) and all(isinstance(n, MappingNode) for n in node.value):
        return list(node.value)
    raise NodeError("a merge key (<<) needs a mapping or a list of mappings", _row(node))


class _Builder:
    """Turns one composed node into plain Python values (no lines: see ``_LineBuilder``)."""

    __slots__ = ("_plain", "duplicates")

    def __init__(self, plain: dict[str, Any] | None = None) -> None:
        self.duplicates: list[tuple[str, int]] = []  # (key, row)
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
                raise NodeError(f"unsupported YAML tag {node.tag!r}", _row(node))
            value = self.value
            return [value(child) for child in node.value]
        raise NodeError("unsupported YAML node", _row(node))

    def plain(self, node: ScalarNode) -> Any:
        found = self._plain.get(node.value, _MISSING)
        if found is _MISSING:
            found = self._plain[node.value] = _scalar(node)
        return found

    def mapping(self, node: MappingNode) -> dict[Any, Any]:
        if node.tag != _MAP:
            raise NodeError(f"unsupported YAML tag {node.tag!r}", _row(node))
        out: dict[Any, Any] = {}
        merged: list[MappingNode] = []
        value = self.value
        for key_node, value_node in node.value:
            if key_node.__class__ is not ScalarNode:
                raise NodeError("a mapping key must be a scalar", _row(key_node))
            tag, key = key_node.tag, key_node.value
            if tag == _PLAIN and (not key or key[0] in _MAYBE_TYPED):
                key = self.plain(key_node)
            elif tag != _STR and tag != _PLAIN:
                key = _scalar(key_node)
            elif key == "<<" and tag == _PLAIN:
                merged.extend(_merge_nodes(value_node))
                continue
            if key in out:
                self.duplicates.append((str(key), _row(key_node)))
            out[key] = value(value_node)
        for source in merged:
            for key, item in self.mapping(source).items():
                out.setdefault(key, item)
        return out


class _LineBuilder:
    """Turns one composed node into its value and its line tree: a node parsed from a slice
    of ``source`` starting at row ``first`` is on the line of row ``first`` + its own."""

    __slots__ = ("first", "source")

    def __init__(self, source: _Text, first: int) -> None:
        self.source = source
        self.first = first

    def _line(self, node: Node) -> int:
        return self.source.line(_row(node) + self.first)

    def build(self, node: Node) -> tuple[Any, LineTree]:
        if isinstance(node, ScalarNode):
            return _scalar(node), None
        if isinstance(node, SequenceNode):
            if node.tag != _SEQ:
                raise NodeError(f"unsupported YAML tag {node.tag!r}", _row(node))
            values: list[Any] = []
            lines: list[tuple[int, Any]] = []
            for child in node.value:
                value, tree = self.build(child)
                values.append(value)
                lines.append((self._line(child), tree))
            return values, lines
        if isinstance(node, MappingNode):
            if node.tag != _MAP:
                raise NodeError(f"unsupported YAML tag {node.tag!r}", _row(node))
            return self.mapping(node)
        raise NodeError("unsupported YAML node", _row(node))

    def mapping(self, node: MappingNode) -> tuple[dict[Any, Any], _MapLines]:
        out: dict[Any, Any] = {}
        lines: _MapLines = {}
        merged: list[tuple[dict[Any, Any], _MapLines]] = []
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                raise NodeError("a mapping key must be a scalar", _row(key_node))
            if _is_merge(key_node):
                merged.extend(self.mapping(n) for n in _merge_nodes(value_node))
                continue
            key = _scalar(key_node)
            value, tree = self.build(value_node)
            out[key] = value
            lines[key] = (self._line(key_node), self._line(value_node), tree)
        for values, trees in merged:
            for key, value in values.items():
                if key not in out:
                    out[key] = value
                    lines[key] = trees[key]
        return out, lines


def _row(node: Node) -> int:
    return int(node.start_mark.line)


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
    """A parsed text, shared by its documents' lazy line indexes: rows (libyaml's) in,
    lines (an editor's) out."""

    __slots__ = ("_last", "_line_starts", "_starts", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._starts: list[int] | None = None  # where each row starts
        self._line_starts: list[int] | None = None  # where each line starts, if not a row
        self._last = 0  # the number of lines, once a line is asked for

    def _row_starts(self) -> list[int]:
        if self._starts is None:
            self._starts = [0, *(m.end() for m in _ROW_BREAK.finditer(self.text))]
        return self._starts

    def line(self, row: int) -> int:
        """The line of ``row``; a row past the text (libyaml's end mark) is the last line."""
        if not self._last:
            text = self.text
            # Counted in C: every document asks for its line, and most texts have no LS.
            breaks = text.count("\n") + text.count("\r") - text.count("\r\n")
            self._last = breaks + (not text.endswith(("\n", "\r")))
            if not text.isascii() and _ROW_ONLY.search(text):
                self._line_starts = [0, *(m.end() for m in _LINE_BREAK.finditer(text))]
        if self._line_starts is None:
            return min(row + 1, self._last)
        rows = self._row_starts()
        offset = rows[row] if row < len(rows) else len(self.text)
        return min(bisect.bisect_right(self._line_starts, offset), self._last)

    def line_at(self, offset: int) -> int:
        """The line of a character offset (the end of the text is on the last line)."""
        return self.line(self.position(offset)[0])

    def column_at(self, offset: int) -> int:
        """The 1-based column of a character offset on its line (a leading BOM not counted)."""
        line = self.line_at(offset)
        starts = self._line_starts or self._row_starts()
        column = offset - starts[line - 1] + 1
        return column - 1 if line == 1 and offset and self.text.startswith(_BOM) else column

    def position(self, offset: int) -> tuple[int, int]:
        """The row and 0-based column of a character offset, as libyaml counts them (a
        leading BOM is not in row 0)."""
        starts = self._row_starts()
        row = bisect.bisect_right(starts, offset) - 1
        column = offset - starts[row]
        return row, column - 1 if row == 0 and column and self.text.startswith(_BOM) else column

    def lines(self, first: int, last: int) -> str:
        """Rows ``first`` to ``last`` (inclusive) with their breaks."""
        starts = self._row_starts()
        if first >= len(starts):
            return ""
        end = starts[last + 1] if last + 1 < len(starts) else len(self.text)
        return self.text[starts[first] : end]


@dataclass(frozen=True, slots=True)
class _Deferred:
    """Where a document's root node sits, to build its line tree when first needed."""

    source: _Text
    first: int  # row and 0-based column (libyaml's: no BOM) where the root node starts
    column: int
    last: int  # row where it ends
    size: int  # entries of the root mapping, to check the rebuilt tree against

    def build(self) -> LineTree:
        # The root's first line may hold `---` or properties before it: blanking them keeps
        # every column, so the slice parses exactly as the node did in place.
        head = self.source.lines(self.first, self.first)
        if self.first == 0:
            head = head.removeprefix(_BOM)  # libyaml's columns skip it, so must the slice
        snippet = " " * self.column + head[self.column :]
        snippet += self.source.lines(self.first + 1, self.last)
        loader = _Loader(snippet)
        try:
            node = loader.get_node() if loader.check_node() else None
            if node is None:
                return None
            _, tree = _LineBuilder(self.source, self.first).build(node)
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


def line_at(text: str, offset: int) -> int:
    """The line of the character at ``offset`` of ``text``, as every line here is counted."""
    return _Text(text).line_at(offset)


def iter_documents(text: str) -> Iterator[SourceDocument | SourceError]:
    """Every non-empty document of ``text``, then at most one error that ended parsing."""
    source = _Text(text)
    try:
        loader = _Loader(text)
    except UnicodeEncodeError as exc:
        # libyaml reads UTF-8, which cannot carry a lone surrogate (nor may YAML hold one).
        yield _unencodable("YAML", source, exc)
        return
    check_aliases = "&" in text
    plain: dict[str, Any] = {}
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            if check_aliases:
                guard = _alias_guard(node)
                if guard is not None:
                    yield SourceError(guard, source.line(_row(node)))
                    continue
            builder = _Builder(plain)
            try:
                value = builder.value(node)
            except NodeError as exc:
                yield SourceError(exc.message, source.line(exc.row))
                continue
            if value is None:
                continue
            errors = [
                SourceError(f"duplicate key {k!r} in mapping", source.line(row))
                for k, row in builder.duplicates
            ]
            start, end = node.start_mark, node.end_mark
            line = source.line(start.line)
            if isinstance(value, dict):
                deferred = _Deferred(source, start.line, start.column, end.line, len(value))
                lines = LineIndex._lazy(line, deferred)
            else:
                lines = LineIndex(line)  # not a resource: only its line is asked
            yield SourceDocument(value, lines, line, errors)
    except yaml.MarkedYAMLError as exc:
        yield SourceError(_describe(exc), _mark_line(exc, source))
    except ReaderError as exc:
        yield _reader_error(exc, source)
    except yaml.YAMLError as exc:
        yield SourceError(f"invalid YAML: {exc}", None)
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
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            yield _unencodable("JSON", source, exc)
            return
    pos = _skip_space(text, 1 if text.startswith(_BOM) else 0)
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
            # Not exc.lineno/colno: they count lines by "\n" alone.
            message = f"invalid JSON: {_json_reason(exc)} (column {source.column_at(exc.pos)})"
            yield SourceError(message, source.line_at(exc.pos))
            return
        except ValueError as exc:  # a NaN or Infinity constant
            yield SourceError(f"invalid JSON: {exc}", source.line_at(pos))
            return
        except RecursionError:
            yield SourceError("invalid JSON: nested too deeply", source.line_at(pos))
            return
        first, column = source.position(pos)
        last = source.position(end - 1)[0]
        errors = [
            SourceError(f"duplicate key {k!r} in mapping", _json_key_line(source, pos, end, k))
            for k in duplicates
        ]
        line = source.line(first)
        if isinstance(value, dict):
            deferred = _Deferred(source, first, column, last, len(value))
            lines = LineIndex._lazy(line, deferred)
        else:
            lines = LineIndex(line)
        if value is not None:
            yield SourceDocument(value, lines, line, errors)
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
    return source.line_at(start + (matches[-1].start() if matches else 0))


def _describe(exc: yaml.MarkedYAMLError) -> str:
    parts = [p for p in (exc.context, exc.problem) if p]
    return "invalid YAML: " + ("; ".join(parts) if parts else str(exc))


def _mark_line(exc: yaml.MarkedYAMLError, source: _Text) -> int | None:
    mark = exc.problem_mark or exc.context_mark
    return None if mark is None else source.line(mark.line)


def _reader_error(exc: ReaderError, source: _Text) -> SourceError:
    """libyaml's refusal of a character (a control character such as NUL), on its line."""
    # libyaml's position counts bytes of the UTF-8 text it was given (a BOM's too).
    position = exc.position if isinstance(exc.position, int) else 0
    offset = len(source.text.encode("utf-8")[:position].decode("utf-8", "ignore"))
    if isinstance(exc.character, int):
        message = f"unacceptable character #x{exc.character:04x}: {exc.reason}"
    else:
        message = str(exc.reason)
    return SourceError(f"invalid YAML: {message}", source.line_at(offset))


def _unencodable(language: str, source: _Text, exc: UnicodeEncodeError) -> SourceError:
    """A lone surrogate (text decoded with errors="surrogateescape", say): no character."""
    code = ord(source.text[exc.start])
    message = f"invalid {language}: unacceptable character #x{code:04x}: surrogates are not allowed"
    return SourceError(message, source.line_at(exc.start))


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
