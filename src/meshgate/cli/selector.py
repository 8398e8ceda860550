"""Kubernetes label selectors (``-l``): parse once, match many.

Rules: the grammar is kubectl's: requirements joined by commas, each one of ``key=value``,
``key==value``, ``key!=value``, ``key in (a,b)``, ``key notin (a,b)``, ``key`` (exists)
or ``!key`` (does not exist). A malformed selector is a ``ValueError`` naming the bad
part; an empty selector matches everything. ``!=`` and ``notin`` match objects without
the key, as in Kubernetes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_SET_OP = re.compile(rf"^\s*(?P<key>{_KEY})\s+(?P<op>in|notin)\s+\((?P<values>[^()]*)\)\s*$")
_EQ_OP = re.compile(rf"^\s*(?P<key>{_KEY})\s*(?P<op>==|!=|=)\s*(?P<value>{_VALUE})\s*$")
_EXISTS = re.compile(rf"^\s*(?P<neg>!?)\s*(?P<key>{_KEY})\s*$")
_VALUE_ONLY = re.compile(rf"^{_VALUE}$")


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "in", "notin", "exists", "!exists"
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.op == "exists":
            return present
        if self.op == "!exists":
            return not present
        if self.op == "in":
            return present and labels[self.key] in self.values
        return not present or labels[self.key] not in self.values


@dataclass(frozen=True)
class Selector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        got = labels or {}
        return all(r.matches(got) for r in self.requirements)


def _split(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def _requirement(part: str) -> Requirement:
    if m := _SET_OP.match(part):
        values = [v.strip() for v in m["values"].split(",")]
        if any(not _VALUE_ONLY.match(v) for v in values):
            raise ValueError(f"invalid value in label selector: {part.strip()!r}")
        return Requirement(m["key"], m["op"], frozenset(values))
    if m := _EQ_OP.match(part):
        op = "notin" if m["op"] == "!=" else "in"
        return Requirement(m["key"], op, frozenset({m["value"]}))
    if m := _EXISTS.match(part):
        return Requirement(m["key"], "!exists" if m["neg"] else "exists")
    raise ValueError(f"unable to parse requirement: {part.strip()!r}")


def parse_selector(text: str | None) -> Selector:
    if text is None or not text.strip():
        return Selector()
    return Selector(tuple(_requirement(part) for part in _split(text)))
