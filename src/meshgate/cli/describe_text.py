"""``describe`` text for any object, in kubectl's generic (custom resource) layout.

Rules: a fixed head (Name, Namespace, Labels, Annotations), then API Version, Kind and
every other top-level field (Metadata, Spec, Status...) as an indented outline: field
names are split from camelCase into Title Case (``creationTimestamp`` -> ``Creation
Timestamp``); scalar values in a run of sibling lines are aligned; list items are
printed under their field one per line (maps in a list separated by their indentation
only, as kubectl does). It ends with ``Events:  <none>``: meshgate records no events.
"""

from __future__ import annotations

import re
from typing import Any

_INDENT = "  "
_HEAD = ("name", "namespace", "labels", "annotations")
_SPECIAL = {"uid": "UID", "api version": "API Version", "ip": "IP", "url": "URL"}


def title(key: str) -> str:
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", key)
    text = " ".join(w[:1].upper() + w[1:] for w in words.split(" "))
    return _SPECIAL.get(text.lower(), text)


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


def _outline(value: Any, depth: int, lines: list[str]) -> None:
    pad = _INDENT * depth
    if isinstance(value, dict):
        run: list[tuple[str, str]] = []

        def flush() -> None:
            width = max((len(k) for k, _ in run), default=0) + 3
            lines.extend(f"{pad}{(k + ':').ljust(width)}{v}".rstrip() for k, v in run)
            run.clear()

        for key, item in value.items():
            if _is_scalar(item):
                run.append((title(str(key)), _empty(item)))
                continue
            flush()
            lines.append(f"{pad}{title(str(key))}:")
            _outline(item, depth + 1, lines)
        flush()
    elif isinstance(value, list):
        for item in value:
            if _is_scalar(item):
                lines.append(f"{pad}{_empty(item)}")
            else:
                _outline(item, depth, lines)
    else:
        lines.append(f"{pad}{_scalar(value)}")


def _pairs(mapping: dict[str, Any] | None, sep: str) -> list[str]:
    if not mapping:
        return ["<none>"]
    return [f"{k}{sep}{v}" for k, v in sorted(mapping.items())]


def describe(obj: dict[str, Any]) -> str:
    meta: dict[str, Any] = obj.get("metadata") or {}
    head = [
        ["Name:", str(meta.get("name", ""))],
        ["Namespace:", str(meta.get("namespace") or "")],
    ]
    for label, field, sep in (("Labels:", "labels", "="), ("Annotations:", "annotations", ": ")):
        values = _pairs(meta.get(field), sep)
        head.append([label, values[0]])
        head.extend(["", v] for v in values[1:])
    head += [["API Version:", str(obj.get("apiVersion", ""))], ["Kind:", str(obj.get("kind", ""))]]
    # Go's tabwriter pads to min width 0 with 2 spaces in kubectl's describe output.
    width = max(len(row[0]) for row in head) + 2
    lines = [f"{row[0].ljust(width)}{row[1]}".rstrip() for row in head]
    rest = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
    rest["metadata"] = {k: v for k, v in meta.items() if k not in _HEAD}
    _outline(rest, 0, lines)
    lines.append("Events:  <none>")
    return "\n".join(lines)
