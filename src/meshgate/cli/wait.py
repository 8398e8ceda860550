"""``meshgate wait``: kubectl wait's twin (block until objects reach a condition).

Rules (kubectl's):
- ``wait KIND NAME... | KIND/NAME... | KIND -l SEL | KIND --all --for=COND [--timeout=30s]``
  with COND ``condition=TYPE`` (status ``True``), ``condition=TYPE=VALUE``, ``delete`` or
  ``jsonpath={.path}=VALUE``. Conditions are read as ``meshgate.cli.conditions`` says (a
  Pod's ``Ready``, a Deployment's ``Available``).
- Each object prints ``kind.group/name condition met`` once its condition holds, in the
  order named; a named object that does not exist is kubectl's NotFound error (for
  ``delete`` it already is: met). A selector or ``--all`` matching nothing is "no
  matching resources found".
- At ``--timeout`` (default 30s; ``0`` checks once) the first object not there yet is
  named in "timed out waiting for the condition on PLURAL/NAME" and the exit code is 1.
- Polls the backend (every 0.25 s), so it works the same over the API and the store.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from meshgate.cli.options import Namespace, Selector

Obj = dict[str, Any]

EXAMPLES = """Examples:

\b
  meshgate wait --for=condition=Ready pod -l app=sleep --timeout=60s
  meshgate wait --for=condition=Available deployment/sleep
  meshgate wait --for=delete pod/sleep-7f8b-x2v4q --timeout=30s
  meshgate wait --for=jsonpath='{.status.phase}'=Running pod/sleep-7f8b-x2v4q
"""


def parse_timeout(text: str) -> float:
    from meshgate.cli.mesh_cmds import parse_duration
    from meshgate.cli.output import fail

    if text.strip() in ("0", "-1"):
        return 0.0 if text.strip() == "0" else 7 * 24 * 3600.0
    try:
        return parse_duration(text, "--timeout")
    except ValueError as exc:
        fail(str(exc))


def parse_for(text: str) -> tuple[str, str, str]:
    """(``condition``|``delete``|``jsonpath``, what, wanted value)."""
    from meshgate.cli.output import fail

    if text.lower() == "delete":
        return "delete", "", ""
    if text.startswith("condition="):
        cond, _, value = text[len("condition=") :].partition("=")
        if cond:
            return "condition", cond.lower(), (value or "True").lower()
    if text.startswith("jsonpath="):
        expr = text[len("jsonpath=") :]
        path, sep, value = expr.rpartition("=")
        if sep and path.startswith("{") and path.endswith("}"):
            return "jsonpath", path, value
    fail(f'unrecognized condition: "{text}"')


def holds(obj: Obj | None, how: str, what: str, wanted: str) -> bool:
    if how == "delete":
        return obj is None
    if obj is None:
        return False
    if how == "condition":
        from meshgate.cli.conditions import conditions

        return conditions(obj).get(what, "").lower() == wanted
    from meshgate.cli.jsonpath import JsonPathError, render

    try:
        return render(what, obj) == wanted
    except JsonPathError:
        return False


def command(
    args: Annotated[list[str], typer.Argument(metavar="KIND [NAME]...", help="what to wait for")],
    for_: Annotated[
        str,
        typer.Option(
            "--for",
            metavar="COND",
            help="condition=TYPE[=VALUE], delete, or jsonpath={.path}=VALUE.",
        ),
    ] = "",
    timeout: Annotated[
        str, typer.Option("--timeout", metavar="DURATION", help="Give up after (default 30s).")
    ] = "30s",
    all_objects: Annotated[
        bool, typer.Option("--all", help="Every object of the kind in the namespace.")
    ] = False,
    selector: Selector = None,
    namespace: Namespace = None,
) -> None:
    """Wait for a condition on one or many resources."""
    from meshgate.cli.context import namespace_flag
    from meshgate.cli.fetch import fetch
    from meshgate.cli.kindargs import parse_targets
    from meshgate.cli.output import err, fail, out
    from meshgate.cli.sources import DEFAULT_NAMESPACE
    from meshgate.cli.writes import display_name, get_one

    if not for_:
        fail("--for must be specified")
    how, what, wanted = parse_for(for_)
    seconds = parse_timeout(timeout)
    named = len(args) > 1 or (bool(args) and "/" in args[0])
    if not named and not all_objects and not selector:
        fail("resource(s) were provided, but no name was specified")
    ns = namespace_flag(namespace) or DEFAULT_NAMESPACE
    # (kind, name, last seen object); a named object missing at the start is None.
    watched: list[tuple[Any, str, Obj | None]] = []
    if named:
        for target in parse_targets(args):
            for name in target.names:
                watched.append((target.kind, name, get_one(target.kind, ns, name)))
        missing = [(k, n) for k, n, o in watched if o is None]
        if missing and how != "delete":
            from meshgate.cli.kindargs import not_found

            for kind, name in missing:
                err(not_found(kind, name))
            raise typer.Exit(1)
    else:
        fetched = fetch(args, ns, selector)
        watched = [(info, o["metadata"]["name"], o) for info, items in fetched.found for o in items]
        if not watched:
            fail("no matching resources found")
    deadline = time.monotonic() + seconds
    pending = list(watched)
    while True:
        still = []
        for kind, name, last in pending:
            current = get_one(kind, ns, name)
            if holds(current, how, what, wanted):
                shown = (
                    current
                    or last
                    or {
                        "apiVersion": kind.api_version,
                        "kind": kind.kind,
                        "metadata": {"name": name},
                    }
                )
                out(f"{display_name(shown)} condition met")
            else:
                still.append((kind, name, current or last))
        pending = still
        if not pending:
            return
        if time.monotonic() >= deadline:
            kind, name, _ = pending[0]
            fail(f"timed out waiting for the condition on {kind.plural}/{name}")
        time.sleep(0.25)
