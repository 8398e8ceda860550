"""Reading what ``get`` and ``describe`` name: kinds, names, namespace, selector.

Rules: the selector is checked before the backend is asked anything; each named object
is fetched by name and each missing one becomes kubectl's NotFound line (the caller
prints them after what was found); without names, every object of the kind in scope.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from meshgate.cli.context import backend_errors, get_backend
from meshgate.cli.kindargs import Target, not_found, parse_targets
from meshgate.cli.output import fail
from meshgate.cli.selector import parse_selector

if TYPE_CHECKING:
    from meshgate.api.registry import KindInfo

Obj = dict[str, Any]


@dataclass
class Fetched:
    targets: list[Target]
    namespace: str | None  # None: every namespace
    found: list[tuple[KindInfo, list[Obj]]]
    missing: list[str]  # NotFound lines

    @property
    def objects(self) -> list[Obj]:
        return [obj for _, items in self.found for obj in items]

    @property
    def single(self) -> bool:
        """Exactly one object was asked for by name."""
        return len(self.targets) == 1 and len(self.targets[0].names) == 1

    def empty_message(self) -> str:
        if self.namespace is None or not any(info.namespaced for info, _ in self.found):
            return "No resources found"
        return f"No resources found in {self.namespace} namespace."


def fetch(args: list[str], namespace: str | None, selector: str | None) -> Fetched:
    try:
        parse_selector(selector)
    except ValueError as exc:
        fail(str(exc))
    targets = parse_targets(args)
    backend = get_backend()
    result = Fetched(targets, namespace, [], [])
    with backend_errors():
        for target in targets:
            items: list[Obj] = []
            names: list[str | None] = [*target.names] or [None]
            for name in names:
                got = backend.get(target.kind, namespace, name, selector)
                if (target.kind.group, target.kind.kind) == ("", "Endpoints"):
                    from meshgate.cli.endpoints import with_computed

                    got = with_computed(backend, namespace, name, selector, got)
                if name is not None and not got:
                    result.missing.append(not_found(target.kind, name))
                items.extend(got)
            result.found.append((target.kind, items))
    return result
