"""``meshgate apply -f``: all-or-nothing configuration changes.

Rules: every document of every file is decoded and checked before anything is sent;
every problem is printed (errors and warnings, with file and line); one error means
nothing is applied and the exit code is 1. Otherwise the objects go to the backend in one
atomic call and each prints as ``kind.group/name created|configured|unchanged``, with a
``(dry run)`` suffix when nothing was really changed.
"""

from __future__ import annotations

from meshgate.cli.options import DryRun, Filenames, Namespace

EXAMPLES = """Examples:

\b
  meshgate apply -f sleep.yaml
  meshgate apply -f walkthrough/              # every .yaml/.yml/.json in the directory
  cat se.yaml | meshgate apply -f -
  meshgate apply -f se.yaml --dry-run         # show what would change, change nothing
  meshgate apply -f gw.yaml -n istio-system   # namespace for documents without one
"""


def command(
    filename: Filenames = None,
    namespace: Namespace = None,
    dry_run: DryRun = "none",
) -> None:
    """Apply a configuration to resources from files or stdin (create or update)."""
    from meshgate.cli.context import namespace_flag

    namespace = namespace_flag(namespace)
    from meshgate.cli.context import backend_errors, get_backend
    from meshgate.cli.options import dry_run_mode, dry_run_suffix, split_files
    from meshgate.cli.output import fail, out
    from meshgate.cli.render import qualified_kind
    from meshgate.cli.report import print_problems
    from meshgate.cli.sources import load, validate

    mode = dry_run_mode(dry_run)
    paths = split_files(filename)
    if not paths:
        fail("must specify -f FILENAME (a file, a directory, or - for stdin)")
    loaded = load(paths, namespace)
    problems = validate(loaded)
    errors, _ = print_problems(problems)
    if errors:
        fail(f"{errors} error(s) found; nothing was applied")
    if not loaded.documents:
        fail("no objects passed to apply")
    from meshgate.api.meta import to_wire_all

    objects = to_wire_all(doc.resource for doc in loaded.documents)
    with backend_errors():
        changes = get_backend().apply(objects, dry_run=mode != "none")
    suffix = dry_run_suffix(mode)
    for change in changes:
        key = change.key
        out(f"{qualified_kind(key.group, key.kind)}/{key.name} {change.action}{suffix}")
