"""Rules on documents the decoder refused, so every problem is reported at once.

Rules of this module:
- A document refused only for values the decoder can leave out (a wrong type, an invalid
  value, an unknown field: MG0005/MG0007/MG0008) is decoded again from a copy without them,
  and the single-resource rules run on what remains. A ServiceEntry with `resolution: DNSS`
  and port `99999` gets both problems in one run.
- A required field that is missing (or was left out) gets a placeholder (``{}``, ``[]``,
  ``""``, ``0``: whichever its type takes), as analysis's lenient reading does; a document
  that still does not decode after ``MAX_ROUNDS`` is not judged further.
- A rule finding is left out when it involves a value that was left out: on its path
  (above or below it), or naming the field in its message. Rules would otherwise judge a
  default the user did not write (e.g. resolution NONE in place of `DNSS`).
- Never changes the user's document; pure, as the rest of the package.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from meshgate.api.decode import Refused, decode_object
from meshgate.api.problems import Problem
from meshgate.validation import validate_resource

MAX_ROUNDS = 16
LEFT_OUT = frozenset({"MG0005", "MG0007", "MG0008"})  # unknown field, wrong type, bad value
MISSING = "MG0006"
PLACEHOLDERS: tuple[Any, ...] = ({}, [], "", 0)
_PART = re.compile(r"\[(\d+)\]|([^.\[\]]+)")

FieldPath = tuple[str | int, ...]


def _path(text: str) -> FieldPath:
    """``spec.ports[0].number`` -> ``("spec", "ports", 0, "number")``."""
    return tuple(int(i) if i else key for i, key in _PART.findall(text))


def _parent(doc: Any, path: FieldPath) -> Any:
    current = doc
    for part in path[:-1]:
        in_dict = isinstance(current, dict) and part in current
        in_list = isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current)
        if in_dict or in_list:
            current = current[part]
        else:
            return None
    return current


def _remove(doc: Any, path: FieldPath) -> bool:
    parent = _parent(doc, path)
    if path and isinstance(parent, dict) and path[-1] in parent:
        del parent[path[-1]]
        return True
    return False  # a list item stays: removing it would shift its siblings' paths


def _fill(doc: Any, path: FieldPath, tried: dict[FieldPath, int]) -> bool:
    """Give a missing required field the next placeholder its type may take."""
    parent = _parent(doc, path)
    n = tried.get(path, 0)
    if not path or not isinstance(parent, dict) or n >= len(PLACEHOLDERS):
        return False
    parent[path[-1]] = copy.deepcopy(PLACEHOLDERS[n])
    tried[path] = n + 1
    return True


def _involves(problem: Problem, removed: list[FieldPath]) -> bool:
    path = _path(problem.field or "")
    for r in removed:
        n = min(len(path), len(r))
        if path[:n] == r[:n]:  # the same field, inside it, or an object holding it
            return True
        name = next((p for p in reversed(r) if isinstance(p, str)), "")
        words = re.sub(r"(?<!^)(?=[A-Z])", " ", name).lower()
        if name and (name in problem.message or words in problem.message.lower()):
            return True
    return False


def rule_problems(refused: Refused) -> list[Problem]:
    """The rules' problems on what the decoder could read of a refused document."""
    problems = refused.problems
    doc = copy.deepcopy(refused.value)
    removed: list[FieldPath] = []
    tried: dict[FieldPath, int] = {}
    for _ in range(MAX_ROUNDS):
        errors = [p for p in problems if p.is_error]
        if not errors or any(p.code not in {*LEFT_OUT, MISSING} or not p.field for p in errors):
            return []
        progress = False
        for p in errors:
            path = _path(p.field or "")
            done = _fill(doc, path, tried) if p.code == MISSING else _remove(doc, path)
            if done:
                removed.append(path)
                progress = True
        if not progress:
            return []
        resource, problems = decode_object(doc, refused.file, refused.lines, refused.namespace)
        if resource is not None:
            found = validate_resource(resource, refused.file, refused.lines)
            return [p for p in found if not _involves(p, removed)]
    return []


def refused_problems(refused: list[Refused]) -> list[Problem]:
    return [p for r in refused for p in rule_problems(r)]
