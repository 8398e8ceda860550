"""``meshgate label``: kubectl label's twin (update the labels on resources).

Rules: ``meshgate.cli.metaedit``'s (``KEY=VALUE`` sets, ``KEY-`` removes, ``--overwrite``,
``--all``, ``-l``, implicit namespaces, one atomic validated write), plus label syntax
checked before anything is read: a bad key or value changes nothing. An object whose
labels did not change prints ``kind/name not labeled``, as kubectl's.
"""

from __future__ import annotations

from typing import Annotated

import typer

from meshgate.cli.metaedit import WELL_KNOWN_NAMESPACES
from meshgate.cli.options import DryRun, Namespace, Selector

__all__ = ["EXAMPLES", "WELL_KNOWN_NAMESPACES", "command"]

EXAMPLES = """Examples:

\b
  meshgate label namespace istio-system istio=system
  meshgate label ns kube-system kube-system=true
  meshgate label pod sleep-7f8b-x2v4q tier=front --overwrite
  meshgate label deploy/sleep tier-                # remove the label
  meshgate label pods --all tier=front
  meshgate label pods -l app=sleep tier=front
"""


def command(
    args: Annotated[
        list[str],
        typer.Argument(metavar="KIND NAME... KEY=VALUE... KEY-...", help="what to label, and how"),
    ],
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Allow labels to change value.")
    ] = False,
    all_objects: Annotated[
        bool, typer.Option("--all", help="Every object of the kind in the namespace.")
    ] = False,
    selector: Selector = None,
    namespace: Namespace = None,
    dry_run: DryRun = "none",
) -> None:
    """Update the labels on a resource (KEY=VALUE sets, KEY- removes)."""
    from meshgate.cli.metaedit import run

    run("labeled", "labels", args, overwrite, all_objects, selector, namespace, dry_run)
