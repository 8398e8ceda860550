"""``get --sort-by=PATH``: order each kind's objects by the value a JSONPath finds.

Rules (as kubectl's sorting printer): PATH is a JSONPath with or without braces
(``.metadata.name``, ``{.metadata.creationTimestamp}``); objects are ordered by the first
value found, numbers numerically and everything else as text (RFC 3339 timestamps sort
correctly as text); objects where the path finds nothing come first, and equal values keep
their listed order. A path that finds nothing in any object is a ``ValueError`` with
kubectl's message.
"""

from __future__ import annotations

from typing import Any

from meshgate.cli.jsonpath import JsonPathError, show, values

Obj = dict[str, Any]


def _key(path: str, obj: Obj) -> tuple[int, float, str] | None:
    found = [v for v in values(path, obj) if v is not None]
    if not found:
        return None
    first = found[0]
    if isinstance(first, int | float) and not isinstance(first, bool):
        return (1, float(first), "")
    return (2, 0.0, show(first))


def sort_by(path: str, objects: list[Obj]) -> list[Obj]:
    try:
        keyed = [(_key(path, o), o) for o in objects]
    except JsonPathError as exc:
        raise ValueError(f"error parsing jsonpath {path}, {exc}") from None
    if objects and all(k is None for k, _ in keyed):
        shown = path if path.startswith("{") else f"{{{path}}}"
        raise ValueError(f'couldn\'t find any field with path "{shown}" in the list of objects')
    keyed.sort(key=lambda pair: pair[0] or (0, 0.0, ""))
    return [o for _, o in keyed]
