"""Turning what the user typed after a verb into kinds and names, as kubectl does.

Rules: a kind is any name the registry knows (kind, plural, singular, short name, with an
optional ``.group``), case-insensitive; several kinds may be joined by commas
(``se,vs``). A category stands for its kinds as in kubectl: ``all`` for pods, services
and deployments (Kubernetes' ``all`` holds no configuration kinds), ``istio-io`` for every
Istio kind, ``networking-istio-io`` and ``security-istio-io`` for one Istio group. Either
every argument is ``KIND/NAME`` or the first is the kind(s) and the rest are names.
Unknown kinds end the command with kubectl's message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from meshgate.cli.output import fail

if TYPE_CHECKING:
    from meshgate.api.registry import KindInfo


@dataclass
class Target:
    kind: KindInfo
    names: list[str] = field(default_factory=list)  # empty: every object of the kind


def resolve_kind(text: str) -> KindInfo:
    from meshgate.api.registry import lookup

    info = lookup(text)
    if info is None:
        fail(f'the server doesn\'t have a resource type "{text}"')
    return info


# kubectl's categories for the kinds meshgate has. `all` is Kubernetes' own: workloads and
# services (pods, services, daemonsets, deployments, replicasets, statefulsets, jobs,
# cronjobs), never configuration; Istio's CRDs declare `istio-io` and `<group>-istio-io`.
_CATEGORIES: dict[str, tuple[tuple[str, str], ...]] = {
    "all": (("", "Pod"), ("", "Service"), ("apps", "Deployment")),
}
_ISTIO_GROUPS = {
    "networking-istio-io": "networking.istio.io",
    "security-istio-io": "security.istio.io",
}


def category(name: str) -> list[KindInfo] | None:
    """The kinds of a category (``all``, ``istio-io``...), in kubectl's order; None if
    ``name`` is not one."""
    from meshgate.api.registry import all_kinds, by_group_kind

    name = name.lower()
    if name in _CATEGORIES:
        found = (by_group_kind(group, kind) for group, kind in _CATEGORIES[name])
        return [info for info in found if info is not None]
    if name == "istio-io":
        groups = set(_ISTIO_GROUPS.values())
    elif name in _ISTIO_GROUPS:
        groups = {_ISTIO_GROUPS[name]}
    else:
        return None
    return [info for info in all_kinds() if info.group in groups]


def _kinds(text: str) -> list[KindInfo]:
    kinds: dict[tuple[str, str], KindInfo] = {}
    for part in text.split(","):
        if part:
            for info in category(part) or [resolve_kind(part)]:
                kinds.setdefault((info.group, info.kind), info)
    return list(kinds.values())


def parse_targets(args: list[str]) -> list[Target]:
    """``["se", "a", "b"]``, ``["se,vs"]`` or ``["se/a", "vs/b"]`` as targets, in order."""
    if not args:
        fail("you must specify the type of resource to get")
    if "/" in args[0]:
        targets: dict[tuple[str, str], Target] = {}
        for arg in args:
            kind_text, sep, name = arg.partition("/")
            if not sep or not name or "/" in name:
                fail(
                    f"there is no need to specify a resource type as a separate argument when "
                    f"passing arguments in resource/name form (e.g. 'get resource/<name>' "
                    f"instead of 'get resource resource/<name>'): {arg!r}"
                )
            info = resolve_kind(kind_text)
            targets.setdefault((info.group, info.kind), Target(info)).names.append(name)
        return list(targets.values())
    names = args[1:]
    if any("/" in n for n in names):
        fail(
            "there is no need to specify a resource type as a separate argument when passing "
            "arguments in resource/name form (e.g. 'get resource/<name>' instead of "
            "'get resource resource/<name>')"
        )
    return [Target(info, list(names)) for info in _kinds(args[0])]


def resource_name(info: KindInfo) -> str:
    """``serviceentries.networking.istio.io``: how kubectl names a kind in NotFound errors."""
    return f"{info.plural}.{info.group}" if info.group else info.plural


def not_found(info: KindInfo, name: str) -> str:
    return f'Error from server (NotFound): {resource_name(info)} "{name}" not found'
