"""How the imperative verbs (create, annotate, scale, patch, rollout...) change objects.

Rules of this module:
- Every write goes through ``write``: each object is decoded and validated exactly as
  ``apply`` validates a file's documents, every problem is printed (with the object's
  name as its "file"), one error changes nothing (exit 1); then all objects go to the
  backend in one atomic ``apply`` (the control plane's API validates and admits them
  again; the local store is used when no control plane runs), so revisions, history and
  ``rollback`` see these changes as they see ``apply``'s.
- Server-kept metadata (resourceVersion, generation, managedFields) is dropped before a
  write: the store owns it. ``status`` is kept as read; the store never takes it from
  a write anyway.
- Names print as kubectl prints them: ``kind.group/name`` (``deployment.apps/x``, core
  kinds without a group: ``pod/x``); errors as kubectl's server errors.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from meshgate.api.registry import KindInfo
    from meshgate.cli.backend import ChangeResult

Obj = dict[str, Any]
SERVER_FIELDS = ("resourceVersion", "generation", "managedFields")


def display_name(obj: Obj) -> str:
    """``deployment.apps/x``: what kubectl prints before ``created``, ``scaled``..."""
    from meshgate.cli.render import object_name

    return object_name(obj)


def for_write(obj: Obj) -> Obj:
    """A deep copy of a stored object without the metadata the store keeps itself."""
    clean = copy.deepcopy(obj)
    meta = clean.setdefault("metadata", {})
    for key in SERVER_FIELDS:
        meta.pop(key, None)
    return clean


def already_exists(info: KindInfo, name: str) -> str:
    from meshgate.cli.kindargs import resource_name

    return f'Error from server (AlreadyExists): {resource_name(info)} "{name}" already exists'


def check(objects: list[Obj]) -> None:
    """Decode and validate ``objects`` as ``apply`` would; print problems, exit 1 on error."""
    from meshgate.api.decode import decode_object
    from meshgate.cli.output import fail
    from meshgate.cli.report import print_problems
    from meshgate.validation import validate_resource

    problems = []
    for obj in objects:
        res, probs = decode_object(obj, file=display_name(obj))
        problems.extend(probs)
        if res is not None:
            problems.extend(validate_resource(res, display_name(obj)))
    errors, _ = print_problems(problems)
    if errors:
        fail(f"{errors} error(s) found; nothing was applied")


def write(objects: list[Obj], dry_run: str = "none") -> list[ChangeResult]:
    """Validate, then apply ``objects`` in one atomic call (``dry_run``: none|client|server).

    A client dry run validates and returns what would be written without asking the
    backend; a server dry run asks it (admission included) and changes nothing."""
    from meshgate.api.meta import ResourceKey, group_of
    from meshgate.cli.backend import ChangeResult
    from meshgate.cli.context import backend_errors, get_backend

    check(objects)
    if dry_run == "client":
        return [
            ChangeResult(
                ResourceKey(
                    group_of(str(o.get("apiVersion", ""))),
                    str(o.get("kind", "")),
                    str(o["metadata"].get("namespace") or ""),
                    str(o["metadata"].get("name") or ""),
                ),
                "configured",
                o,
            )
            for o in objects
        ]
    with backend_errors():
        return get_backend().apply(objects, dry_run=dry_run == "server")


def get_one(info: KindInfo, namespace: str, name: str) -> Obj | None:
    from meshgate.cli.context import backend_errors, get_backend

    with backend_errors():
        found = get_backend().get(info, namespace if info.namespaced else "", name, None)
    return found[0] if found else None
