"""``describe`` text for any object: kubectl's Secret and ConfigMap describers, and its
generic (custom resource) layout for every other kind.

Rules:
- Every page starts with a fixed head (Name, Namespace, Labels, Annotations) and ends with
  ``Events:  <none>`` (meshgate records no events), except a Secret's, as in kubectl.
- A Secret never shows its values: a ``Data`` section lists each key with its size in
  bytes (``data`` decoded, ``stringData`` on top, as the API server merges them), as
  kubectl's Secret describer does. A ConfigMap shows each value under its key and a
  ``----`` rule, and ``BinaryData`` sizes, as kubectl's ConfigMap describer does.
- The generic layout prints API Version, Kind and every other top-level field (Metadata,
  Spec, Status...) as an indented outline. Field names become labels as kubectl's
  ``smartLabelFor`` makes them: a name of letters (and ``-``) only is split from camelCase
  into Title Case (``creationTimestamp`` -> ``Creation Timestamp``); any other name is
  kept as written. Keys of user maps (labels, annotations, data, selectors...) are not
  field names and are always kept as written.
- Scalar values in a run of sibling lines are aligned; a multi-line value is printed
  under its key, one level deeper, one line per line; list items are printed under
  their field one per line (maps in a list separated by their indentation only, as
  kubectl does).
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

_INDENT = "  "
_HEAD = ("name", "namespace", "labels", "annotations")
_SPECIAL = {"uid": "UID", "api version": "API Version", "ip": "IP", "url": "URL"}
# Fields whose value is a map from user-chosen keys: the keys are data, never labelled.
_USER_MAPS = frozenset(
    {
        "labels",
        "annotations",
        "data",
        "stringData",
        "binaryData",
        "matchLabels",
        "nodeSelector",
        "sourceLabels",
        "queryParams",
        "withoutHeaders",
        "set",
        "add",
    }
)
_LABEL_CHARS = re.compile(r"[A-Za-z-]+")


def title(key: str) -> str:
    if not _LABEL_CHARS.fullmatch(key):
        return key  # kubectl's smartLabelFor keeps names with other characters as they are
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", key)
    text = " ".join(w[:1].upper() + w[1:] for w in words.split(" "))
    return _SPECIAL.get(text.lower(), text)


def _user_map(field: str, value: dict[str, Any]) -> bool:
    """Whether ``value``'s keys are user data (label keys, header names...), not fields."""
    if field == "selector":  # a Service's label map; a workload's is a LabelSelector
        return all(isinstance(v, str) for v in value.values())
    if field == "headers":  # match headers by name; HeaderOperations has request/response
        return not set(value) <= {"request", "response"}
    return field in _USER_MAPS


def _lines(text: str) -> list[str]:
    return text.splitlines() or [""]


def _scalar(value: Any) -> str:
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _is_scalar(value: Any) -> bool:
    return not isinstance(value, dict | list) or not value


def _empty(value: Any) -> str:
    return "<none>" if isinstance(value, dict | list) else _scalar(value)


def _outline(value: Any, depth: int, lines: list[str], verbatim: bool = False) -> None:
    """``verbatim``: ``value`` is a user map, whose keys are printed as they are."""
    pad = _INDENT * depth
    if isinstance(value, dict):
        run: list[tuple[str, str]] = []

        def flush() -> None:
            width = max((len(k) for k, _ in run), default=0) + 3
            lines.extend(f"{pad}{(k + ':').ljust(width)}{v}".rstrip() for k, v in run)
            run.clear()

        for key, item in value.items():
            label = str(key) if verbatim else title(str(key))
            text = _empty(item) if _is_scalar(item) else ""
            if _is_scalar(item) and "\n" not in text:
                run.append((label, text))
                continue
            flush()
            lines.append(f"{pad}{label}:")
            if _is_scalar(item):
                # A multi-line value under its key, so the outline stays readable.
                lines.extend(f"{pad}{_INDENT}{line}".rstrip() for line in _lines(text))
            else:
                user = isinstance(item, dict) and not verbatim and _user_map(str(key), item)
                _outline(item, depth + 1, lines, user)
        flush()
    elif isinstance(value, list):
        for item in value:
            if _is_scalar(item):
                lines.extend(f"{pad}{line}".rstrip() for line in _lines(_empty(item)))
            else:
                _outline(item, depth, lines)
    else:
        lines.extend(f"{pad}{line}".rstrip() for line in _lines(_scalar(value)))


def _pairs(mapping: dict[str, Any] | None, sep: str) -> list[str]:
    if not mapping:
        return ["<none>"]
    return [f"{k}{sep}{v}" for k, v in sorted(mapping.items())]


def _aligned(rows: list[tuple[str, str]]) -> list[str]:
    """Rows as Go's tabwriter prints them in kubectl's describe (2 spaces of padding)."""
    width = max((len(label) for label, _ in rows), default=0) + 2
    return [f"{label.ljust(width)}{value}".rstrip() for label, value in rows]


def _head(obj: dict[str, Any]) -> list[tuple[str, str]]:
    meta: dict[str, Any] = obj.get("metadata") or {}
    rows = [("Name:", str(meta.get("name", ""))), ("Namespace:", str(meta.get("namespace") or ""))]
    for label, field, sep in (("Labels:", "labels", "="), ("Annotations:", "annotations", ": ")):
        values = _pairs(meta.get(field), sep)
        rows.append((label, values[0]))
        rows.extend(("", v) for v in values[1:])
    return rows


def _size(value: Any, encoded: bool) -> int | None:
    """Bytes of a Secret/ConfigMap value; None for base64 that does not decode."""
    if not encoded:
        return len(str(value).encode())
    try:
        return len(base64.b64decode(str(value), validate=True))
    except (binascii.Error, ValueError):
        return None


def _secret(obj: dict[str, Any]) -> list[str]:
    sizes: dict[str, int | None] = {}
    for key, value in (obj.get("data") or {}).items():
        sizes[str(key)] = _size(value, encoded=True)
    for key, value in (obj.get("stringData") or {}).items():
        sizes[str(key)] = _size(value, encoded=False)
    lines = _aligned(_head(obj))
    lines += ["", *_aligned([("Type:", str(obj.get("type") or "Opaque"))]), "", "Data", "===="]
    lines += _aligned(
        [
            (f"{key}:", "<invalid base64>" if size is None else f"{size} bytes")
            for key, size in sorted(sizes.items())
        ]
    )
    return lines


def _configmap(obj: dict[str, Any]) -> list[str]:
    lines = _aligned(_head(obj))
    lines += ["", "Data", "===="]
    for key, value in sorted((obj.get("data") or {}).items()):
        lines += [f"{key}:", "----", *_lines(str(value)), ""]
    lines += ["", "BinaryData", "===="]
    for key, value in sorted((obj.get("binaryData") or {}).items()):
        size = _size(value, encoded=True)
        lines.append(f"{key}: {'<invalid base64>' if size is None else size} bytes")
    lines.append("")
    return lines


def _generic(obj: dict[str, Any]) -> list[str]:
    meta: dict[str, Any] = obj.get("metadata") or {}
    head = _head(obj)
    head += [("API Version:", str(obj.get("apiVersion", ""))), ("Kind:", str(obj.get("kind", "")))]
    lines = _aligned(head)
    rest = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
    rest["metadata"] = {k: v for k, v in meta.items() if k not in _HEAD}
    _outline(rest, 0, lines)
    return lines


def describe(obj: dict[str, Any], extra: list[str] | None = None) -> str:
    """The page for ``obj``; ``extra`` lines (a section meshgate adds) go before Events."""
    core = obj.get("apiVersion") == "v1"
    if core and obj.get("kind") == "Secret":
        return "\n".join(_secret(obj))  # kubectl's Secret describer prints no events
    lines = _configmap(obj) if core and obj.get("kind") == "ConfigMap" else _generic(obj)
    lines += extra or []
    lines.append("Events:  <none>")
    return "\n".join(lines)
