"""``meshgate delete``: remove resources named on the command line or in files.

Rules: ``delete -f PATH`` deletes what the files describe (identity only: kind, namespace,
name); ``delete KIND NAME...`` or ``delete KIND/NAME...`` what is named. The deletion is one
atomic call; each deleted object prints as ``kind.group "name" deleted``; names that do
not exist print kubectl's NotFound line and exit 1, unless ``--ignore-not-found``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from meshgate.cli.options import DryRun, Filenames, Namespace

if TYPE_CHECKING:
    from meshgate.api.meta import ResourceKey
    from meshgate.api.registry import KindInfo

EXAMPLES = """Examples:

\b
  meshgate delete se external-svc-http
  meshgate delete -f walkthrough/4-egress-gateway.yaml
  meshgate delete vs/egressgateway-vs gw/egress-gw --dry-run
"""


def _keys_from_args(args: list[str], namespace: str) -> list[tuple[KindInfo, ResourceKey]]:
    from meshgate.api.meta import ResourceKey
    from meshgate.cli.kindargs import parse_targets
    from meshgate.cli.output import fail

    keys = []
    for target in parse_targets(args):
        if not target.names:
            fail("resource(s) were provided, but no name was specified")
        info = target.kind
        ns = namespace if info.namespaced else ""
        keys += [(info, ResourceKey(info.group, info.kind, ns, n)) for n in target.names]
    return keys


def _keys_from_files(paths: list[str], namespace: str | None) -> list[tuple[KindInfo, ResourceKey]]:
    from meshgate.api.registry import kind_for
    from meshgate.cli.output import fail
    from meshgate.cli.report import print_problems
    from meshgate.cli.sources import load

    loaded = load(paths, namespace)
    problems = loaded.problems
    errors, _ = print_problems(p for p in problems if p.is_error)
    if errors:
        fail(f"{errors} error(s) found; nothing was deleted")
    keys = []
    for doc in loaded.documents:
        info = kind_for(doc.resource.api_version, doc.resource.kind)
        if info is not None:
            keys.append((info, doc.resource.key))
    return keys


def command(
    args: Annotated[
        list[str] | None,
        typer.Argument(metavar="KIND [NAME]...", help="KIND NAME... or KIND/NAME..."),
    ] = None,
    filename: Filenames = None,
    namespace: Namespace = None,
    ignore_not_found: Annotated[
        bool, typer.Option("--ignore-not-found", help="Do not fail on names that do not exist.")
    ] = False,
    dry_run: DryRun = "none",
) -> None:
    """Delete resources by kind and name, or those described in files."""
    from meshgate.cli.context import namespace_flag

    namespace = namespace_flag(namespace)
    from meshgate.cli.context import backend_errors, get_backend
    from meshgate.cli.kindargs import not_found
    from meshgate.cli.options import dry_run_mode, dry_run_suffix, split_files
    from meshgate.cli.output import err, fail, out
    from meshgate.cli.render import qualified_kind
    from meshgate.cli.sources import DEFAULT_NAMESPACE

    mode = dry_run_mode(dry_run)
    paths = split_files(filename)
    if paths and args:
        fail("resource names cannot be given together with -f")
    if paths:
        keyed = _keys_from_files(paths, namespace)
    elif args:
        keyed = _keys_from_args(args, namespace or DEFAULT_NAMESPACE)
    else:
        fail("you must provide one or more resources by argument or filename")
    with backend_errors():
        changes = get_backend().delete([k for _, k in keyed], dry_run=mode != "none")
    deleted = {c.key for c in changes}
    suffix = dry_run_suffix(mode)
    missing = False
    for info, key in keyed:
        if key in deleted:
            out(f'{qualified_kind(key.group, key.kind)} "{key.name}" deleted{suffix}')
        elif not ignore_not_found:
            err(not_found(info, key.name))
            missing = True
    if missing:
        raise typer.Exit(1)
