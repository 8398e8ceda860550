"""``meshgate egress dry-run --mode REGISTRY_ONLY [-f FILE]``: which recent requests a change
refuses.

Rules:
- The control plane translates its snapshot with the outbound traffic policy changed and/or
  the ``-f`` resources applied on top (translation is pure: nothing is applied) and traces
  every recent outbound request of the mesh-wide access log through it
  (``trace.service.TraceService.dry_run``); this module prints the answer.
- ``-f`` documents are decoded and validated here first, as ``apply`` does: any error is
  printed with file and line and nothing is asked of the control plane.
- Without ``-f`` the mode defaults to REGISTRY_ONLY; with ``-f`` and no ``--mode``, the
  mode is the changed mesh's own (a MeshConfig in the files, else the current one).
- Exit code 0 when nothing would be refused, 3 when something would (a script can gate
  the switch on it), 1 when the dry run cannot run.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

EXAMPLES = """Examples:

\b
  meshgate egress dry-run --mode REGISTRY_ONLY             # the last hour, every namespace
  meshgate egress dry-run --mode REGISTRY_ONLY -n default --since 10m
  meshgate egress dry-run --mode REGISTRY_ONLY -o json
  meshgate egress discover --emit yaml > egress.yaml
  meshgate egress dry-run --mode REGISTRY_ONLY -f egress.yaml   # as if they were applied
"""

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str) -> float:
    unit = text[-1:] if text[-1:] in UNITS else "s"
    number = text[:-1] if text[-1:] in UNITS else text
    try:
        value = float(number)
    except ValueError:
        raise ValueError(f"--since {text}: write a duration such as 30m, 1h or 90s") from None
    if value <= 0:
        raise ValueError(f"--since {text}: must be more than zero")
    return value * UNITS[unit]


def command(
    mode: Annotated[
        str | None,
        typer.Option(
            "--mode",
            metavar="MODE",
            help="The outbound traffic policy to try: REGISTRY_ONLY or ALLOW_ANY (default "
            "REGISTRY_ONLY; with -f, the mode the files and the mesh give).",
            show_default=False,
        ),
    ] = None,
    filename: Annotated[
        list[str] | None,
        typer.Option(
            "--filename",
            "-f",
            metavar="PATH",
            help="Resources to try as if applied (file, directory or -; repeatable): "
            "the same question for a changed configuration.",
        ),
    ] = None,
    namespace: Annotated[
        str | None,
        typer.Option("-n", "--namespace", metavar="NS", help="Only requests from this namespace."),
    ] = None,
    since: Annotated[
        str, typer.Option("--since", metavar="DURATION", help="How far back to look (1h).")
    ] = "1h",
    output: Annotated[
        str, typer.Option("-o", "--output", metavar="FORMAT", help="text (default) or json.")
    ] = "text",
) -> None:
    """Before switching the mesh's outbound policy: which recent requests would be refused."""
    from meshgate.cli.pod_cmds import call_api
    from meshgate.trace.render import render_dry_run

    try:
        seconds = parse_since(since)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    if mode is not None and mode not in ("REGISTRY_ONLY", "ALLOW_ANY"):
        typer.echo(f"error: --mode {mode}: use REGISTRY_ONLY or ALLOW_ANY", err=True)
        raise typer.Exit(1)
    objects = _objects(filename)
    if mode is None and not objects:
        mode = "REGISTRY_ONLY"
    body = {"mode": mode, "sinceSeconds": seconds, "namespace": namespace, "objects": objects}
    result = call_api("POST", "/v1/egress/dry-run", body)
    typer.echo(json.dumps(result, indent=2) if output == "json" else render_dry_run(result))
    if result.get("refused"):
        raise typer.Exit(3)


def _objects(filename: list[str] | None) -> list[dict[str, object]]:
    """The ``-f`` documents as wire objects, checked as ``apply`` checks them."""
    if not filename:
        return []
    from meshgate.api.meta import to_wire_all
    from meshgate.cli.options import split_files
    from meshgate.cli.output import fail
    from meshgate.cli.report import print_problems
    from meshgate.cli.sources import load, validate

    loaded = load(split_files(filename))
    errors, _ = print_problems(validate(loaded))
    if errors:
        fail(f"{errors} error(s) found; nothing was tried")
    if not loaded.documents:
        fail("no objects in " + ", ".join(split_files(filename)))
    return to_wire_all(doc.resource for doc in loaded.documents)


def add_to(group: typer.Typer) -> None:
    """Register ``dry-run`` in the ``egress`` command group."""
    from meshgate.cli.helpfmt import Command

    group.command("dry-run", cls=Command, epilog=EXAMPLES)(command)
