"""``meshgate history`` and ``meshgate rollback``: a resource's stored versions.

Rules: history lists what the store kept for one resource, oldest first, as REVISION
(the store revision of that write), GENERATION, CHANGE (created, configured, deleted) and
AGE-free facts only; ``--revision N`` prints that version as YAML. ``rollback`` re-applies a
kept version (default: the one before the current) through the normal apply path, so it
is one more revision, never a rewrite of history.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from meshgate.cli.options import DryRun, Namespace

if TYPE_CHECKING:
    from meshgate.api.meta import ResourceKey
    from meshgate.api.registry import KindInfo
    from meshgate.cli.backend import HistoryEntry

Target = Annotated[list[str], typer.Argument(metavar="KIND NAME", help="KIND NAME or KIND/NAME")]


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
    return "created" if i == 0 or entries[i - 1].deleted else "configured"


HISTORY_EXAMPLES = """Examples:

\b
  meshgate history se external-svc-http
  meshgate history se external-svc-http --revision 3
"""


def history_command(
    args: Target,
    namespace: Namespace = None,
    revision: Annotated[
        int | None, typer.Option("--revision", help="Print this version as YAML.")
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


def rollback_command(
    args: Target,
    namespace: Namespace = None,
    to_revision: Annotated[
        int, typer.Option("--to-revision", help="Revision to go back to (0: the previous).")
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

    mode = dry_run_mode(dry_run)
    info, key = _one(args, namespace)
    entries = _entries(info, key)
    from meshgate.store.canonical import user_view

    kept = [e for e in entries if not e.deleted]
    if to_revision:
        chosen = [e for e in kept if e.revision == to_revision]
    else:
        # "Previous" means the last version the user would see as different: a status
        # write is a version too, but rolling back to it would change nothing.
        now = user_view(entries[-1].object) if not entries[-1].deleted else None
        chosen = [e for e in kept if user_view(e.object) != now][-1:]
    if not chosen:
        fail(
            f"unable to find the specified revision {to_revision}"
            if to_revision
            else "no previous revision to roll back to"
        )
    with backend_errors():
        changes = get_backend().apply([user_view(chosen[0].object)], dry_run=mode != "none")
    for change in changes:
        verb = "rolled back" if change.action != "unchanged" else "skipped rollback (unchanged)"
        out(f"{qualified_kind(key.group, key.kind)}/{key.name} {verb}{dry_run_suffix(mode)}")
