"""``meshgate history`` and ``meshgate rollback``: a resource's stored versions.

Rules: history lists what the store kept for one resource, oldest first, one row per
store revision: REVISION (the revision of that write; a deletion is a write of its own),
GENERATION and CHANGE (created, configured, deleted: as the store recorded the write, so
the oldest kept version is not called created when older ones were pruned; rows of a store
from before that record guess from the generation); ``--revision N`` prints that
version as YAML. ``rollback`` re-applies a kept version through the normal apply path, so
it is one more revision, never a rewrite of history.

"Previous" (``rollback`` without ``--to-revision``) is the last version that existed:
- for an existing object, the last kept version before the current one that differs from
  it (a delete and re-create of the same content is not a change worth undoing); if every
  earlier version equals the current one, rollback is skipped and says which revision
  already matches, as ``kubectl rollout undo`` does;
- for a deleted object, the version the delete removed: rollback re-creates it (kubectl
  has no undo for a delete; restoring the object is what a user undoing one expects).
A deletion row cannot be rolled back to; ``meshgate delete`` does that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import typer

from meshgate.cli.options import DryRun, Namespace

if TYPE_CHECKING:
    from meshgate.api.meta import ResourceKey
    from meshgate.api.registry import KindInfo
    from meshgate.cli.backend import HistoryEntry

ResourceArg = Annotated[
    list[str], typer.Argument(metavar="KIND NAME", help="KIND NAME or KIND/NAME.")
]


def _one(args: list[str], namespace: str | None) -> tuple[KindInfo, ResourceKey]:
    from meshgate.api.meta import ResourceKey
    from meshgate.cli.kindargs import parse_targets
    from meshgate.cli.output import fail
    from meshgate.cli.sources import DEFAULT_NAMESPACE

    targets = parse_targets(args)
    if len(targets) != 1 or len(targets[0].names) != 1:
        fail("exactly one resource must be named: KIND NAME or KIND/NAME")
    info, name = targets[0].kind, targets[0].names[0]
    ns = (namespace or DEFAULT_NAMESPACE) if info.namespaced else ""
    return info, ResourceKey(info.group, info.kind, ns, name)


def _entries(info: KindInfo, key: ResourceKey) -> list[HistoryEntry]:
    from meshgate.cli.context import backend_errors, get_backend
    from meshgate.cli.kindargs import not_found
    from meshgate.cli.output import err

    with backend_errors():
        entries = get_backend().history(key)
    if not entries:
        err(not_found(info, key.name))
        raise typer.Exit(1)
    return entries


def _change(entries: list[HistoryEntry], i: int) -> str:
    if entries[i].deleted:
        return "deleted"
    if entries[i].created is not None:  # the store knows (older versions may be pruned)
        return "created" if entries[i].created else "configured"
    if i == 0:  # an older store: a first version of generation 1 was most likely its creation
        return "created" if entries[i].generation <= 1 else "configured"
    return "created" if entries[i - 1].deleted else "configured"


HISTORY_EXAMPLES = """Examples:

\b
  meshgate history se external-svc-http
  meshgate history se external-svc-http --revision 3
"""


def history_command(
    args: ResourceArg,
    namespace: Namespace = None,
    revision: Annotated[
        int | None,
        typer.Option("--revision", metavar="N", help="Print the version of this revision as YAML."),
    ] = None,
) -> None:
    """List the stored versions of a resource."""
    from meshgate.cli.context import namespace_flag

    namespace = namespace_flag(namespace)
    from meshgate.cli.output import fail, out
    from meshgate.cli.render import qualified_kind, to_yaml
    from meshgate.cli.tabular import format_table

    info, key = _one(args, namespace)
    entries = _entries(info, key)
    if revision is not None:
        chosen = [e for e in entries if e.revision == revision]
        if not chosen:
            fail(f"unable to find the specified revision {revision}")
        out(to_yaml(chosen[0].object))
        return
    rows = [["REVISION", "GENERATION", "CHANGE"]]
    rows += [
        [str(e.revision), str(e.generation), _change(entries, i)] for i, e in enumerate(entries)
    ]
    out(f"{qualified_kind(key.group, key.kind)}/{key.name}")
    out(format_table(rows))


ROLLBACK_EXAMPLES = """Examples:

\b
  meshgate rollback se external-svc-http                  # back to the previous version
  meshgate rollback se external-svc-http --to-revision 3
"""


@dataclass(frozen=True)
class RollbackTarget:
    """The version a rollback goes to, or why there is none (``entry`` is then None)."""

    entry: HistoryEntry | None
    matches_current: bool = False
    error: str = ""


def choose(entries: list[HistoryEntry], to_revision: int = 0) -> RollbackTarget:
    """The version ``rollback`` restores (see the module's rules); ``entries`` oldest first."""
    from meshgate.store.canonical import user_view

    if to_revision:
        chosen = [e for e in entries if e.revision == to_revision]
        if not chosen:
            return RollbackTarget(
                None, error=f"unable to find the specified revision {to_revision}"
            )
        if chosen[0].deleted:
            return RollbackTarget(
                None,
                error=f"revision {to_revision} records a deletion; use `meshgate delete` to "
                "delete the resource",
            )
        current = None if entries[-1].deleted else user_view(entries[-1].object)
        return RollbackTarget(chosen[0], matches_current=user_view(chosen[0].object) == current)
    if entries[-1].deleted:
        kept = [e for e in entries if not e.deleted]
        if not kept:
            return RollbackTarget(None, error="no previous revision to roll back to")
        return RollbackTarget(kept[-1])
    current = user_view(entries[-1].object)
    earlier = [e for e in entries[:-1] if not e.deleted]
    if not earlier:
        return RollbackTarget(None, error="no previous revision to roll back to")
    different = [e for e in earlier if user_view(e.object) != current]
    if different:
        return RollbackTarget(different[-1])
    return RollbackTarget(earlier[-1], matches_current=True)


def rollback_command(
    args: ResourceArg,
    namespace: Namespace = None,
    to_revision: Annotated[
        int,
        typer.Option(
            "--to-revision",
            metavar="N",
            help="Revision to go back to, as `history` lists it (0: the previous version).",
        ),
    ] = 0,
    dry_run: DryRun = "none",
) -> None:
    """Make a resource as it was at an earlier revision (see `history`)."""
    from meshgate.cli.context import namespace_flag

    namespace = namespace_flag(namespace)
    from meshgate.cli.context import backend_errors, get_backend
    from meshgate.cli.options import dry_run_mode, dry_run_suffix
    from meshgate.cli.output import fail, out
    from meshgate.cli.render import qualified_kind
    from meshgate.store.canonical import user_view

    mode = dry_run_mode(dry_run)
    info, key = _one(args, namespace)
    target = choose(_entries(info, key), to_revision)
    if target.entry is None:
        fail(target.error)
    name = f"{qualified_kind(key.group, key.kind)}/{key.name}"
    if target.matches_current:
        out(
            f"{name} skipped rollback (current version already matches revision "
            f"{target.entry.revision})"
        )
        return
    with backend_errors():
        get_backend().apply([user_view(target.entry.object)], dry_run=mode != "none")
    out(f"{name} rolled back{dry_run_suffix(mode)}")
