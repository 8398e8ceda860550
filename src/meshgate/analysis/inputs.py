"""Turning files, store objects and a fresh mesh's defaults into analysis entries.

Rules of this module:
- Files and stdin are read as ``decode`` reads them (strict UTF-8, ``read_source``), then
  document by document and ``kind: List`` (or ``<Kind>List``) item by item,
  each item keeping its own lines. Nothing aborts a run: a document the strict decoder
  refuses is read leniently (``lenient.repair``) so the other analyzers still see it, its
  decoding problems kept on the entry; one that cannot be read at all becomes an IST0106
  note; structural validation findings are kept on the entry too (the ``schema.*``
  analyzers report them as IST0106/IST0133, as Istio's ``schema.ValidationAnalyzer`` does);
  a kind meshgate does not model (EnvoyFilter, say) is an Info note (MG2001) saying it was
  skipped. ``Node`` documents are kept in their light form (``context.Node``).
- Later documents with the same key replace earlier ones, as ``apply`` would.
- ``with_defaults`` adds what a fresh mesh holds (``fresh_mesh_objects``) unless the input
  already has it; ``decode_objects`` reads canonical wire dicts (the store's, or objects a
  controller would create, marked ``implied``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

from meshgate.analysis import messages as msg
from meshgate.analysis.context import Entry, Node
from meshgate.analysis.lenient import repair
from meshgate.analysis.messages import Message, render
from meshgate.api.decode import STDIN, NotUtf8, decode_object, read_source
from meshgate.api.defaults import fresh_mesh_objects
from meshgate.api.meta import Resource, ResourceKey
from meshgate.api.problems import Problem
from meshgate.api.registry import kind_for
from meshgate.api.yamlsource import LineIndex, SourceDocument, iter_documents

SUFFIXES = (".yaml", ".yml", ".json")


@dataclass
class Inputs:
    entries: dict[ResourceKey, Entry[Resource]] = field(default_factory=dict)
    nodes: dict[str, Node] = field(default_factory=dict)
    notes: list[Message] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    def add(self, entry: Entry[Resource]) -> None:
        self.entries[entry.resource.key] = entry

    def add_missing(self, entry: Entry[Resource]) -> None:
        self.entries.setdefault(entry.resource.key, entry)

    @property
    def resources(self) -> list[Entry[Resource]]:
        return list(self.entries.values())


def read_files(paths: Sequence[str], namespace: str | None = None) -> Inputs:
    """Every document of ``paths`` (files, directories non-recursively, ``-`` for stdin)."""
    inputs = Inputs()
    for name, text in _sources(paths, inputs):
        inputs.files.append(name)
        for doc in iter_documents(text):
            if isinstance(doc, SourceDocument):
                _read_value(doc.value, doc.lines, name, namespace, inputs)
            else:
                inputs.notes.append(
                    Message(
                        msg.SCHEMA_VALIDATION_ERROR,
                        "",
                        "",
                        render(msg.SCHEMA_VALIDATION_ERROR, doc.message),
                        name,
                        doc.line,
                    )
                )
    return inputs


def decode_objects(objects: Iterable[dict[str, Any]], inputs: Inputs, implied: bool) -> None:
    """Add canonical wire dicts (store objects, or a controller's implied output)."""
    for obj in objects:
        if obj.get("kind") == "Node" and obj.get("apiVersion") == "v1":
            node = _node(obj)
            inputs.nodes.setdefault(node.name, node)
            continue
        resource, _ = decode_object(obj)
        if resource is None:
            continue
        entry: Entry[Resource] = Entry(resource, implied=implied)
        if implied:
            inputs.add_missing(entry)
        else:
            inputs.add(entry)


def with_defaults(inputs: Inputs) -> None:
    """What a new mesh holds (``istio-system``, the default MeshConfig...), unless given."""
    for resource in fresh_mesh_objects():
        inputs.add_missing(Entry(resource))


# --- one document ----------------------------------------------------------------------


def _read_value(
    value: Any, lines: LineIndex, file: str, namespace: str | None, inputs: Inputs
) -> None:
    if not isinstance(value, dict):
        _schema_note(inputs, "", "", "a document must be an object", file, lines.line)
        return
    api_version, kind = value.get("apiVersion"), value.get("kind")
    if _is_list(value, api_version, kind):
        for i, item in enumerate(value["items"]):
            _read_value(item, lines.child(("items", i)), file, namespace, inputs)
        return
    if kind == "Node" and api_version == "v1":
        node = _node(value)
        inputs.nodes[node.name] = node
        return
    if isinstance(api_version, str) and isinstance(kind, str) and not kind_for(api_version, kind):
        origin = _describe(value, kind)
        what = f"{kind} ({api_version})"
        inputs.notes.append(
            Message(
                msg.SKIPPED_KIND,
                origin,
                _meta_str(value, "namespace"),
                render(msg.SKIPPED_KIND, what),
                file,
                lines.line,
            )
        )
        return
    resource, problems = decode_object(value, file, lines, namespace)
    if resource is None:
        resource = repair(value, file, lines, namespace)
        if resource is None:
            origin = _describe(value, kind if isinstance(kind, str) else "object")
            for p in problems:
                _schema_note(
                    inputs, origin, _meta_str(value, "namespace"), problem_text(p), file, p.line
                )
            return
        # What was repaired is not validated: its placeholders would only add noise.
        inputs.add(Entry(resource, file, lines, problems=tuple(problems)))
        return
    inputs.add(
        Entry(resource, file, lines, problems=tuple(problems) + _validate(resource, file, lines))
    )


def _is_list(value: dict[str, Any], api_version: Any, kind: Any) -> bool:
    if not isinstance(kind, str) or not isinstance(value.get("items"), list):
        return False
    return kind == "List" or (kind.endswith("List") and kind_for(str(api_version), kind) is None)


def _validate(resource: Resource, file: str, lines: LineIndex) -> tuple[Problem, ...]:
    from meshgate.validation import validate_resource

    return tuple(validate_resource(resource, file, lines))


def problem_text(p: Problem) -> str:
    """A problem as the text after ``Schema validation error:``."""
    where = f"{p.field}: " if p.field else ""
    code = f" [{p.code}]" if p.code else ""
    return f"{where}{p.message}{code}"


def _schema_note(
    inputs: Inputs, origin: str, namespace: str, text: str, file: str, line: int | None
) -> None:
    mtype = msg.SCHEMA_VALIDATION_ERROR
    inputs.notes.append(Message(mtype, origin, namespace, render(mtype, text), file, line))


def _meta_str(value: dict[str, Any], key: str) -> str:
    meta = value.get("metadata")
    got = meta.get(key) if isinstance(meta, dict) else None
    return got if isinstance(got, str) else ""


def _describe(value: dict[str, Any], kind: str) -> str:
    name, namespace = _meta_str(value, "name"), _meta_str(value, "namespace")
    if not name:
        return kind
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


def _node(value: dict[str, Any]) -> Node:
    meta = value.get("metadata")
    labels = meta.get("labels") if isinstance(meta, dict) else None
    clean = {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}
    return Node(_meta_str(value, "name"), clean)


def _sources(paths: Sequence[str], inputs: Inputs) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for raw in paths:
        if raw == STDIN:
            try:
                out.append(("<stdin>", read_source(STDIN)))
            except NotUtf8 as exc:
                _schema_note(inputs, "", "", f"cannot read: {exc.reason}", "<stdin>", exc.line)
            continue
        path = FsPath(raw)
        files = (
            sorted(p for p in path.iterdir() if p.is_file() and p.suffix in SUFFIXES)
            if path.is_dir()
            else [path]
        )
        for f in files:
            try:
                out.append((str(f), read_source(str(f))))
            except NotUtf8 as exc:
                _schema_note(inputs, "", "", f"cannot read: {exc.reason}", str(f), exc.line)
            except OSError as exc:
                _schema_note(inputs, "", "", f"cannot read: {exc.strerror or exc}", str(f), None)
    return out
