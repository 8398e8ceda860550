"""Decode user YAML/JSON into typed, defaulted resources, or into Problems.

Rules of this module:
- Input is never trusted and never raises: syntax errors, unknown kinds, wrong types,
  unknown fields and missing required fields all become ``Problem``s carrying the
  resource, the field path (``spec.ports[0].number``), ``file:line`` and the reason.
  Every problem of every document is reported, not only the first.
- A document that has problems yields no resource; the other documents still decode. A
  document of a known kind refused for its fields is kept as ``Refused`` (raw value,
  lines, problems), so validation can still judge what it could read.
- Multi-document streams are read in order; empty documents are skipped; ``kind: List``
  (or ``<Kind>List``) is applied item by item, each item with its own lines.
- Decoded resources are defaulted as the API server would (``meshgate.api.defaults``)
  but carry no values the user did not write otherwise, so the wire form round-trips.
- Directories are read non-recursively, files sorted by name (``*.yaml``, ``*.yml``,
  ``*.json``); ``-`` is standard input. A ``*.json`` file is strict JSON (a trailing comma
  is an MG0001 syntax error, as in kubectl); everything else is YAML, JSON included.
- Files and stdin are read as bytes and decoded as strict UTF-8 (``read_source``): text that
  is not UTF-8 is MG0009 on the line of its first bad byte, never surrogates that would
  fail later, deep in the parser.
- Problem codes: MG0001 YAML or JSON syntax, MG0002 not an object, MG0003 apiVersion/kind
  missing, MG0004 unknown kind or version, MG0005 unknown field, MG0006 missing required
  field, MG0007 wrong type, MG0008 invalid value, MG0009 file unreadable,
  MG0010 duplicate key.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

from pydantic import ValidationError

from meshgate.api.defaults import DEFAULT_NAMESPACE, apply_defaults
from meshgate.api.gcpause import paused_gc
from meshgate.api.meta import Resource, group_of
from meshgate.api.problems import Problem, Severity
from meshgate.api.registry import by_group_kind, kind_for
from meshgate.api.yamlsource import (
    LineIndex,
    Path,
    SourceDocument,
    iter_documents,
    iter_json_documents,
    line_at,
)

SUFFIXES = (".yaml", ".yml", ".json")
STDIN = "-"
# Texts this long (a few hundred documents) are decoded with the cyclic collector paused.
_BULK_TEXT = 1 << 16


@dataclass
class Decoded:
    """A resource decoded from a document, with where it came from."""

    resource: Resource
    file: str = ""
    line: int = 0
    lines: LineIndex = field(default_factory=LineIndex)

    def line_of(self, path: Path) -> int | None:
        """Line of a field path such as ``("spec", "ports", 0, "number")``.

        A path that does not exist gives the line of its deepest existing parent; a
        resource that did not come from YAML gives None.
        """
        return self.lines.line_of(path)


@dataclass
class Refused:
    """A document of a known kind that failed to decode, as it was written."""

    value: dict[str, Any]
    file: str
    lines: LineIndex
    namespace: str | None
    problems: list[Problem]


@dataclass
class DecodeResult:
    documents: list[Decoded] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(p.is_error for p in self.problems)

    @property
    def resources(self) -> list[Resource]:
        return [d.resource for d in self.documents]

    def extend(self, other: DecodeResult) -> None:
        self.documents.extend(other.documents)
        self.problems.extend(other.problems)
        self.refused.extend(other.refused)


def decode_text(text: str, filename: str = "", namespace: str | None = None) -> DecodeResult:
    """Decode every document of a YAML (or JSON) text; a ``filename`` ending in ``.json``
    is read as strict JSON (a stream of JSON values), as kubectl reads it.

    ``namespace`` is the namespace given to namespaced resources that name none (as
    ``kubectl -n``); without it they get ``default``.
    """
    result = DecodeResult()
    documents = iter_json_documents if filename.endswith(".json") else iter_documents
    with paused_gc(len(text), _BULK_TEXT):
        for item in documents(text):
            if isinstance(item, SourceDocument):
                for err in item.errors:
                    result.problems.append(_problem(err.message, "MG0010", filename, err.line))
                _decode_value(item.value, item.lines, filename, namespace, result)
            else:
                result.problems.append(_problem(item.message, "MG0001", filename, item.line))
    return result


def decode_paths(paths: Sequence[str], namespace: str | None = None) -> DecodeResult:
    """Decode files, directories (their ``*.yaml|*.yml|*.json``, sorted) and ``-`` (stdin)."""
    result = DecodeResult()
    for name, text in _read_sources(paths, result.problems):
        result.extend(decode_text(text, name, namespace))
    return result


def decode_object(
    obj: Any,
    file: str = "",
    lines: LineIndex | None = None,
    namespace: str | None = None,
) -> tuple[Resource | None, list[Problem]]:
    """Decode one already-parsed object (e.g. JSON from the HTTP API)."""
    result = DecodeResult()
    _decode_value(obj, lines or LineIndex(), file, namespace, result)
    if len(result.documents) == 1 and not any(p.is_error for p in result.problems):
        return result.documents[0].resource, result.problems
    if len(result.documents) > 1:
        # A List is not one object; the caller wanted exactly one.
        result.problems.append(
            _problem(
                "expected one object, got a List", "MG0002", file, lines.line if lines else None
            )
        )
    return None, result.problems


# --- one document ----------------------------------------------------------------------


def _decode_value(
    value: Any, lines: LineIndex, file: str, namespace: str | None, result: DecodeResult
) -> None:
    line = lines.line
    if not isinstance(value, dict):
        result.problems.append(
            _problem(
                f"a document must be an object with apiVersion and kind, not {_type_name(value)}",
                "MG0002",
                file,
                line,
            )
        )
        return
    api_version, kind = value.get("apiVersion"), value.get("kind")
    missing = [
        name for name, v in (("apiVersion", api_version), ("kind", kind)) if not isinstance(v, str)
    ]
    if missing:
        where = _describe_resource(value, kind, namespace)
        for name in missing:
            result.problems.append(
                Problem(
                    Severity.ERROR,
                    f"{name} is missing or not a string",
                    field=name,
                    resource=where,
                    file=file,
                    line=lines.line_of((name,)),
                    code="MG0003",
                )
            )
        return
    assert isinstance(api_version, str) and isinstance(kind, str)
    if kind == "List" or (
        kind.endswith("List") and "items" in value and kind_for(api_version, kind) is None
    ):
        _decode_list(value, lines, file, namespace, result)
        return
    info = kind_for(api_version, kind)
    if info is None:
        result.problems.append(
            Problem(
                Severity.ERROR,
                _unknown_kind(api_version, kind),
                field="kind",
                resource=_describe_resource(value, kind, namespace, api_version),
                file=file,
                line=lines.line_of(("kind",)),
                code="MG0004",
            )
        )
        return
    try:
        resource = info.model.model_validate(value)
    except ValidationError as exc:
        where = _describe_resource(value, kind, namespace, api_version)
        problems = _validation_problems(exc, value, lines, file, where)
        result.problems.extend(problems)
        result.refused.append(Refused(value, file, lines, namespace, problems))
        return
    apply_defaults(resource, info, namespace)
    result.documents.append(Decoded(resource, file, line or 0, lines))


def _decode_list(
    value: dict[str, Any], lines: LineIndex, file: str, namespace: str | None, result: DecodeResult
) -> None:
    items = value.get("items")
    if items is None:
        return
    if not isinstance(items, list):
        result.problems.append(
            Problem(
                Severity.ERROR,
                "items of a List must be a list",
                field="items",
                file=file,
                line=lines.line_of(("items",)),
                code="MG0007",
            )
        )
        return
    for i, item in enumerate(items):
        _decode_value(item, lines.child(("items", i)), file, namespace, result)


def _unknown_kind(api_version: str, kind: str) -> str:
    known = by_group_kind(group_of(api_version), kind)
    if known is not None:
        versions = ", ".join(f"{known.group}/{v}" if known.group else v for v in known.versions)
        return f"{kind} is not served in {api_version}; use apiVersion {versions}"
    return f"unknown kind {kind!r} in apiVersion {api_version!r}"


def _describe_resource(
    value: dict[str, Any], kind: Any, namespace: str | None, api_version: str | None = None
) -> str:
    """``Kind ns/name`` as validation names a decoded resource (``str(ResourceKey)``): a
    namespaced document without a namespace is named with the one it would get; a
    cluster-scoped kind is ``Kind name``. A kind of unknown scope shows what was written."""
    meta = value.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    written = meta.get("namespace") if isinstance(meta, dict) else None
    kind_s = kind if isinstance(kind, str) else "object"
    if not isinstance(name, str) or not name:
        return kind_s
    info = by_group_kind(group_of(api_version), kind_s) if api_version else None
    if info is not None and not info.namespaced:
        return f"{kind_s} {name}"
    if isinstance(written, str) and written:
        return f"{kind_s} {written}/{name}"
    if info is not None:
        return f"{kind_s} {namespace or DEFAULT_NAMESPACE}/{name}"
    return f"{kind_s} {name}"


# --- pydantic errors -> problems -------------------------------------------------------

_MAPPING_ERRORS = {"dict_type", "model_type", "model_attributes_type", "mapping_type"}
_TYPE_ERRORS = {
    "int_type",
    "int_parsing",
    "float_type",
    "string_type",
    "bool_type",
    "int_from_float",
}


def _validation_problems(
    exc: ValidationError, value: dict[str, Any], lines: LineIndex, file: str, where: str
) -> list[Problem]:
    by_path: dict[Path, list[tuple[str, str]]] = {}
    for err in exc.errors(include_url=False):
        path = _clean_loc(err["loc"], value)
        code, message = _describe_error(err)
        entries = by_path.setdefault(path, [])
        if (code, message) not in entries:
            entries.append((code, message))
    problems = []
    for path, entries in by_path.items():
        # A union (int | str...) fails once per member; say it once.
        code = entries[0][0]
        message = " or ".join(m for _, m in entries) if len(entries) > 1 else entries[0][1]
        if len(entries) > 1 and all(c == "MG0007" for c, _ in entries):
            message = _merge_type_messages([m for _, m in entries])
        problems.append(
            Problem(
                Severity.ERROR,
                message,
                field=format_path(path),
                resource=where,
                file=file,
                line=lines.line_of(path),
                code=code,
            )
        )
    return problems


def _clean_loc(loc: Iterable[str | int], value: Any) -> Path:
    """The user's field path: pydantic's loc without union-member tags."""
    parts = list(loc)
    out: list[str | int] = []
    current = value
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        in_dict = isinstance(current, dict) and part in current
        in_list = isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current)
        if in_dict or in_list:
            out.append(part)
            current = current[part]  # type: ignore[index]
        elif isinstance(current, dict) and last and isinstance(part, str) and part != "[key]":
            out.append(part)  # a missing field
            current = None
        else:
            current = current if isinstance(current, dict | list) else None
            # union tags ("int", "str", "function-after[...]") and "[key]" are not fields
    return tuple(out)


def _describe_error(err: Any) -> tuple[str, str]:
    kind = err["type"]
    msg = str(err["msg"])
    given = err.get("input")
    if kind == "extra_forbidden":
        return "MG0005", "unknown field"
    if kind == "missing":
        return "MG0006", "required field is missing"
    if kind in _MAPPING_ERRORS:
        # pydantic names the model class ("instance of ServiceEntrySpec"); users wrote YAML.
        return "MG0007", f"expected a mapping, got {_given(given)}"
    if kind == "list_type":
        return "MG0007", f"expected a list, got {_given(given)}"
    if kind in _TYPE_ERRORS:
        return "MG0007", f"{_lower_first(msg)}, got {_given(given)}"
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    elif kind == "literal_error":
        msg = f"invalid value {_short(given)}: {_lower_first(msg)}"
    else:
        msg = f"{_lower_first(msg)}, got {_short(given)}"
    return "MG0008", msg


def _merge_type_messages(messages: list[str]) -> str:
    expected = [m.split(",", 1)[0] for m in messages]
    expected = [e.removeprefix("input should be ").removeprefix("expected ") for e in expected]
    got = messages[0].split(", got ", 1)[-1]
    return f"expected {' or '.join(expected)}, got {got}"


def _given(value: Any) -> str:
    """What the user wrote, by type and, for a scalar, value: ``string 'x'``, ``null``."""
    if value is None or isinstance(value, dict | list):
        return _type_name(value)
    return f"{_type_name(value)} {_short(value)}"


def _lower_first(s: str) -> str:
    return s[:1].lower() + s[1:]


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def format_path(path: Path) -> str:
    """``("spec", "ports", 0, "number")`` -> ``spec.ports[0].number``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif out:
            out += f".{part}"
        else:
            out = str(part)
    return out


def _problem(message: str, code: str, file: str, line: int | None) -> Problem:
    return Problem(Severity.ERROR, message, file=file, line=line, code=code)


# --- sources ---------------------------------------------------------------------------


class NotUtf8(ValueError):
    """Bytes that are not UTF-8 text: the first bad byte, why, and the line it is on."""

    def __init__(self, data: bytes, exc: UnicodeDecodeError) -> None:
        self.reason = f"not UTF-8 (byte 0x{data[exc.start]:02x}: {exc.reason})"
        super().__init__(self.reason)
        # Counted on the text with each bad byte replaced: the offending one stays a
        # character, so its line is where an editor shows it.
        prefix = data[: exc.start].decode("utf-8")
        self.line = line_at(data.decode("utf-8", "replace"), len(prefix))


def read_source(name: str) -> str:
    """The text of file ``name``, or of stdin for ``-``, decoded as strict UTF-8.

    Raises ``OSError`` or ``NotUtf8``.
    """
    if name == STDIN:
        # Bytes: the text layer would turn bad bytes into surrogates (surrogateescape).
        stream = getattr(sys.stdin, "buffer", None)  # absent on a replaced text stdin
        if stream is None:
            return str(sys.stdin.read())
        data: bytes = stream.read()
    else:
        data = FsPath(name).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NotUtf8(data, exc) from exc


def _read_sources(paths: Sequence[str], problems: list[Problem]) -> list[tuple[str, str]]:
    sources: list[tuple[str, str]] = []
    for raw in paths:
        if raw == STDIN:
            try:
                sources.append(("<stdin>", read_source(STDIN)))
            except NotUtf8 as exc:
                problems.append(
                    Problem(
                        Severity.ERROR,
                        f"cannot read: {exc.reason}",
                        file="<stdin>",
                        line=exc.line,
                        code="MG0009",
                    )
                )
            continue
        path = FsPath(raw)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in SUFFIXES)
            if not files:
                problems.append(
                    Problem(
                        Severity.WARNING,
                        "no *.yaml, *.yml or *.json files",
                        file=raw,
                        code="MG0009",
                    )
                )
        else:
            files = [path]
        for f in files:
            try:
                sources.append((str(f), read_source(str(f))))
            except NotUtf8 as exc:
                problems.append(
                    Problem(
                        Severity.ERROR,
                        f"cannot read: {exc.reason}",
                        file=str(f),
                        line=exc.line,
                        code="MG0009",
                    )
                )
            except OSError as exc:
                reason = exc.strerror or str(exc)
                problems.append(
                    Problem(Severity.ERROR, f"cannot read: {reason}", file=str(f), code="MG0009")
                )
    return sources
