"""``meshgate scale``: kubectl scale's twin (set a Deployment's replicas).

Rules (kubectl's): ``scale --replicas=N KIND NAME...`` (or ``KIND/NAME``, ``-l``, ``--all``);
only kinds with replicas can be scaled (meshgate has Deployments; it has no StatefulSet
or ReplicaSet kind). ``--current-replicas=M`` is a precondition: when a Deployment has
another count, kubectl's "Expected replicas to be M, was K" and nothing changes. Every
object changes in one atomic write validated as ``apply``'s; each prints
``deployment.apps/x scaled``. The control plane then starts or stops pods as a
Deployment's controller does.
"""

from __future__ import annotations

from typing import Annotated

import typer

from meshgate.cli.options import DryRun, Namespace, Selector

EXAMPLES = """Examples:

\b
  meshgate scale deploy sleep --replicas=3
  meshgate scale deployment/sleep --replicas=0
  meshgate scale deploy --current-replicas=2 --replicas=3 sleep
  meshgate scale deploy -l app=sleep --replicas=2
"""

SCALABLE = ("Deployment",)


def command(
    args: Annotated[list[str], typer.Argument(metavar="KIND [NAME]...", help="what to scale")],
    replicas: Annotated[
        int, typer.Option("--replicas", metavar="N", help="The new number of replicas.")
    ] = -1,
    current_replicas: Annotated[
        int,
        typer.Option("--current-replicas", metavar="N", help="Precondition: the count it has now."),
    ] = -1,
    all_objects: Annotated[
        bool, typer.Option("--all", help="Every object of the kind in the namespace.")
    ] = False,
    selector: Selector = None,
    namespace: Namespace = None,
    dry_run: DryRun = "none",
) -> None:
    """Set a new size for a Deployment."""
    from meshgate.cli.context import namespace_flag
    from meshgate.cli.fetch import fetch
    from meshgate.cli.options import dry_run_mode, dry_run_suffix
    from meshgate.cli.output import err, fail, out
    from meshgate.cli.sources import DEFAULT_NAMESPACE
    from meshgate.cli.writes import display_name, for_write, write

    mode = dry_run_mode(dry_run)
    if replicas < 0:
        fail("The --replicas=COUNT flag is required, and COUNT must be greater than or equal to 0")
    named = len(args) > 1 or (bool(args) and "/" in args[0])
    if not named and not all_objects and not selector:
        fail("resource(s) were provided, but no name was specified")
    ns = namespace_flag(namespace) or DEFAULT_NAMESPACE
    fetched = fetch(args, ns, selector)
    for line in fetched.missing:
        err(line)
    if fetched.missing:
        raise typer.Exit(1)
    objects = fetched.objects
    if not objects:
        fail("no objects passed to scale")
    for obj in objects:
        if obj.get("kind") not in SCALABLE:
            fail(f"{display_name(obj)} cannot be scaled: only Deployments have replicas here")
        have = int((obj.get("spec") or {}).get("replicas", 1))
        if current_replicas >= 0 and have != current_replicas:
            fail(f"Expected replicas to be {current_replicas}, was {have}")
    updated = []
    for obj in objects:
        new = for_write(obj)
        new["spec"]["replicas"] = replicas
        updated.append(new)
    write(updated, mode)
    for obj in objects:
        out(f"{display_name(obj)} scaled{dry_run_suffix(mode)}")
