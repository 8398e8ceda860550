"""Findings and the registry of per-kind rules.

Rules of this module:
- A rule is a function ``(resource, Findings) -> None`` registered for a kind with
  ``@rule(Kind)``; it reports every problem it sees and never raises.
- ``Findings.at(...)`` gives a view whose paths are prefixed, so a helper that checks a
  nested message does not need to know where that message sits.
- ``check_resource`` runs every rule registered for the resource's class (and its bases).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from meshgate.api.meta import Resource
from meshgate.api.problems import Severity

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Finding:
    path: Path
    message: str
    code: str
    severity: Severity = Severity.ERROR


class Findings:
    """Collects findings; ``at`` gives a view that prefixes paths."""

    def __init__(self, items: list[Finding] | None = None, prefix: Path = ()) -> None:
        self.items: list[Finding] = [] if items is None else items
        self.prefix = prefix

    def at(self, *path: str | int) -> Findings:
        return Findings(self.items, self.prefix + path)

    def error(self, code: str, message: str, *path: str | int) -> None:
        self.items.append(Finding(self.prefix + path, message, code))

    def warn(self, code: str, message: str, *path: str | int) -> None:
        self.items.append(Finding(self.prefix + path, message, code, Severity.WARNING))

    def check(self, code: str, reason: str | None, *path: str | int) -> None:
        if reason is not None:
            self.error(code, reason, *path)

    def check_warn(self, code: str, reason: str | None, *path: str | int) -> None:
        if reason is not None:
            self.warn(code, reason, *path)


R = TypeVar("R", bound=Resource)
RuleFn = Callable[[Any, Findings], None]
_RULES: dict[type[Resource], list[RuleFn]] = {}


def rule(kind: type[R]) -> Callable[[Callable[[R, Findings], None]], Callable[[R, Findings], None]]:
    def add(fn: Callable[[R, Findings], None]) -> Callable[[R, Findings], None]:
        _RULES.setdefault(kind, []).append(fn)
        return fn

    return add


def run_rules(resource: Resource, out: Findings) -> None:
    for kind, fns in _RULES.items():
        if isinstance(resource, kind):
            for fn in fns:
                fn(resource, out)
