"""``meshgate annotate``: kubectl annotate's twin (update the annotations on resources).

Rules: ``meshgate.cli.metaedit``'s (``KEY=VALUE`` sets, ``KEY-`` removes, ``--overwrite``,
``--all``, ``-l``, implicit namespaces, one atomic write validated as ``apply``'s, so a bad
key changes nothing). Every object named prints ``kind.group/name annotated``, changed or
not, as kubectl's; a value that would change without ``--overwrite`` is kubectl's error
naming every such key.
"""

from __future__ import annotations

from typing import Annotated

import typer

from meshgate.cli.options import DryRun, Namespace, Selector

EXAMPLES = """Examples:

\b
  meshgate annotate pod sleep-7f8b-x2v4q description='my frontend'
  meshgate annotate deploy/sleep owner=team-a --overwrite
  meshgate annotate svc sleep owner-               # remove the annotation
  meshgate annotate pods --all checked=yes
  meshgate annotate pods -l app=sleep checked=yes
"""


def command(
    args: Annotated[
        list[str],
        typer.Argument(
            metavar="KIND NAME... KEY=VALUE... KEY-...", help="what to annotate, and how"
        ),
    ],
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Allow annotations to change value.")
    ] = False,
    all_objects: Annotated[
        bool, typer.Option("--all", help="Every object of the kind in the namespace.")
    ] = False,
    selector: Selector = None,
    namespace: Namespace = None,
    dry_run: DryRun = "none",
) -> None:
    """Update the annotations on a resource (KEY=VALUE sets, KEY- removes)."""
    from meshgate.cli.metaedit import run

    run("annotated", "annotations", args, overwrite, all_objects, selector, namespace, dry_run)
