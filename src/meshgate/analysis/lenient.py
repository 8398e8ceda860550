"""Reading, for analysis, documents the strict decoder refuses.

Rules of this module:
- Analysis inputs are often partial (a Pod with labels but no spec, a Gateway server
  without a port, a Service port with protocol ``HTTP``): ``istioctl analyze`` still reads
  them, and judging the rest of the mesh needs them. ``repair`` retries the decoder on a
  copy of the document, changing only what the decoder named: a missing required field gets
  an empty placeholder (``{}``, then ``[]``, ``""``, ``0``, whichever the type takes), a
  value of the wrong type or an invalid value is removed (its default applies), an unknown
  field is dropped.
- It never changes the user's document and gives up (None) when a round fixes nothing or
  after ``MAX_ROUNDS``; the caller keeps the decoder's problems either way, so the user
  still learns what is wrong (as IST0106 from the schema analyzers).
"""

from __future__ import annotations

import copy
import re
from typing import Any

from meshgate.api.decode import decode_object
from meshgate.api.meta import Resource
from meshgate.api.yamlsource import LineIndex

MAX_ROUNDS = 24
PLACEHOLDERS: tuple[Any, ...] = ({}, [], "", 0)
REMOVED_ON = {"MG0005", "MG0007", "MG0008"}  # unknown field, wrong type, invalid value
_PART = re.compile(r"\[(\d+)\]|([^.\[\]]+)")


def parse_path(text: str) -> tuple[str | int, ...]:
    """``spec.ports[0].number`` -> ``("spec", "ports", 0, "number")``."""
    return tuple(int(i) if i else key for i, key in _PART.findall(text))


def repair(
    value: dict[str, Any], file: str, lines: LineIndex, namespace: str | None
) -> Resource | None:
    """Decode a fixed-up copy of ``value``; None when it cannot be made to decode."""
    doc = copy.deepcopy(value)
    tried: dict[tuple[str | int, ...], int] = {}
    for _ in range(MAX_ROUNDS):
        resource, problems = decode_object(doc, file, lines, namespace)
        if resource is not None:
            return resource
        changed = False
        for p in problems:
            if not p.is_error or not p.field:
                continue
            path = parse_path(p.field)
            if p.code == "MG0006":
                changed |= _fill(doc, path, tried)
            elif p.code in REMOVED_ON:
                changed |= _remove(doc, path)
        if not changed:
            return None
    return None


def _child(current: Any, part: str | int) -> tuple[bool, Any]:
    if isinstance(current, dict) and isinstance(part, str) and part in current:
        return True, current[part]
    if isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
        return True, current[part]
    return False, None


def _parent(doc: Any, path: tuple[str | int, ...]) -> Any:
    current = doc
    for part in path[:-1]:
        found, current = _child(current, part)
        if not found:
            return None
    return current


def _fill(doc: Any, path: tuple[str | int, ...], tried: dict[tuple[str | int, ...], int]) -> bool:
    parent = _parent(doc, path)
    key = path[-1] if path else None
    if not isinstance(parent, dict) or not isinstance(key, str):
        return False
    attempt = tried.get(path, 0)
    if attempt >= len(PLACEHOLDERS):
        return False
    tried[path] = attempt + 1
    parent[key] = copy.deepcopy(PLACEHOLDERS[attempt])
    return True


def _remove(doc: Any, path: tuple[str | int, ...]) -> bool:
    parent = _parent(doc, path)
    key = path[-1] if path else None
    if isinstance(parent, dict) and isinstance(key, str) and key in parent:
        del parent[key]
        return True
    if isinstance(parent, list) and isinstance(key, int) and 0 <= key < len(parent):
        del parent[key]
        return True
    return False
