"""``meshgate get``: list or show resources as kubectl does.

Rules: tables on stdout with kubectl's columns (NAMESPACE first with ``-A``; ``kind/name``
names when several kinds are listed); ``-o json|yaml`` prints only the document: the
object itself for one named object, otherwise a ``List``; ``-o name`` prints
``kind.group/name``. Missing names print kubectl's NotFound line to stderr and make the
exit code 1 after everything found has been printed. An empty result says so on stderr.
``--sort-by`` orders each kind's objects (every output format); ``--no-headers`` drops
table headers; ``-o custom-columns=H:PATH,...`` prints one table of the named columns. ``-w`` then
prints one row per change (``meshgate.cli.watch``); ``--watch-only`` skips the listing.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from meshgate.cli.options import AllNamespaces, Namespace, Selector

FORMATS = ("", "wide", "yaml", "json", "name")

EXAMPLES = """Examples:

\b
  meshgate get se                         # ServiceEntries in namespace default
  meshgate get serviceentries -A          # in every namespace
  meshgate get se external-svc-http -o yaml
  meshgate get se,vs,gw -n default        # several kinds
  meshgate get deploy/sleep svc/sleep
  meshgate get po -l app=sleep -o wide
  meshgate get pod -l app=sleep -o jsonpath={.items..metadata.name}
  meshgate get pod NAME -o jsonpath='{.status.podIP}'
  meshgate get po -o custom-columns=NAME:.metadata.name,IP:.status.podIP --no-headers
  meshgate get se -A --sort-by=.metadata.creationTimestamp
  meshgate get pods -w                    # then a row per change, until interrupted
"""


def command(
    args: Annotated[
        list[str],
        typer.Argument(metavar="KIND [NAME]...", help="KIND [NAME...], KIND,KIND or KIND/NAME..."),
    ],
    namespace: Namespace = None,
    all_namespaces: AllNamespaces = False,
    selector: Selector = None,
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            metavar="FORMAT",
            help=(
                "Output format: wide, yaml, json, name, jsonpath=TEMPLATE or "
                "custom-columns=HEADER:PATH,..."
            ),
        ),
    ] = "",
    show_labels: Annotated[
        bool, typer.Option("--show-labels", help="Add a LABELS column.")
    ] = False,
    no_headers: Annotated[
        bool, typer.Option("--no-headers", help="Print tables without their header row.")
    ] = False,
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="After the listing, print each change.")
    ] = False,
    watch_only: Annotated[
        bool, typer.Option("--watch-only", help="Print only the changes, not the listing.")
    ] = False,
    request_timeout: Annotated[
        str | None,
        typer.Option("--request-timeout", metavar="DURATION", help="With -w: stop after this."),
    ] = None,
    sort_by: Annotated[
        str | None,
        typer.Option(
            "--sort-by",
            metavar="PATH",
            help="Sort each kind's objects by a JSONPath, e.g. .metadata.creationTimestamp.",
        ),
    ] = None,
) -> None:
    """Display one or many resources."""
    from meshgate.cli.context import namespace_flag

    namespace = namespace_flag(namespace)
    from meshgate.cli.fetch import fetch
    from meshgate.cli.output import err, fail, out
    from meshgate.cli.sources import DEFAULT_NAMESPACE

    template = None
    custom = None
    if output.startswith("jsonpath="):
        template, output = output[len("jsonpath=") :], "jsonpath"
    elif output.startswith("custom-columns="):
        from meshgate.cli.customcols import parse_columns

        try:
            custom = parse_columns(output[len("custom-columns=") :])
        except ValueError as exc:
            fail(str(exc))
        output = "custom-columns"
    elif output not in FORMATS:
        fail(
            f'unable to match a printer suitable for the output format "{output}", '
            "allowed formats are: custom-columns,json,jsonpath=TEMPLATE,name,wide,yaml"
        )
    ns = None if all_namespaces else (namespace or DEFAULT_NAMESPACE)
    watching = watch or watch_only
    if watching:
        from meshgate.cli.watch import start_revision

        since = start_revision()
    fetched = fetch(args, ns, selector)
    if watch_only:
        fetched.found = [(info, []) for info, _ in fetched.found]
    if any(o.get("kind") == "Pod" for o in fetched.objects):
        _warn_if_no_control_plane()
    if sort_by is not None:
        from meshgate.cli.sortby import sort_by as sort_objects

        try:
            fetched.found = [(info, sort_objects(sort_by, items)) for info, items in fetched.found]
        except ValueError as exc:
            fail(str(exc))
    objects, single, found = fetched.objects, fetched.single, fetched.found
    if custom is not None:
        from meshgate.cli.customcols import custom_table

        if objects:
            try:
                out(custom_table(custom, objects, headers=not no_headers))
            except ValueError as exc:
                fail(str(exc))
    elif template is not None:
        from meshgate.cli.jsonpath import JsonPathError, render
        from meshgate.cli.render import as_list

        if objects or not single:
            try:
                text = render(template, objects[0] if single else as_list(objects))
            except JsonPathError as exc:
                fail(f"error parsing jsonpath {template}, {exc}")
            typer.echo(text, nl=False)
    elif output in ("json", "yaml"):
        from meshgate.cli.render import as_list, to_json, to_yaml

        if objects or not single:
            doc = objects[0] if single else as_list(objects)
            text = to_json(doc) if output == "json" else to_yaml(doc)
            out(text)
    elif output == "name":
        from meshgate.cli.render import object_name

        for obj in objects:
            out(object_name(obj))
    else:
        from meshgate.cli.table import render_tables

        text = render_tables(
            found,
            all_namespaces=all_namespaces,
            wide=output == "wide",
            qualified=len(fetched.targets) > 1,
            show_labels=show_labels,
            headers=not no_headers,
        )
        if text:
            out(text)
    if (
        not objects
        and not fetched.missing
        and not watch_only
        and output not in ("json", "yaml", "jsonpath")
    ):
        err(fetched.empty_message())
    if watching and not fetched.missing:
        _watch(
            fetched,
            since,
            selector,
            output,
            all_namespaces,
            show_labels,
            request_timeout,
            listed=bool(objects) and not no_headers,
        )
    for line in fetched.missing:
        err(line)
    if fetched.missing:
        raise typer.Exit(1)


def _watch(
    fetched: Any,
    since: int,
    selector: str | None,
    output: str,
    all_namespaces: bool,
    show_labels: bool,
    request_timeout: str | None,
    listed: bool,
) -> None:
    """Follow changes; a table's header comes with the first row if the listing had none."""
    import sys

    from meshgate.cli.output import fail, out
    from meshgate.cli.render import object_name, to_json, to_yaml
    from meshgate.cli.table import render_tables
    from meshgate.cli.wait import parse_timeout
    from meshgate.cli.watch import follow

    if output not in ("", "wide", "name", "yaml", "json"):
        fail(f"--watch prints tables, names, yaml or json, not {output}")
    timeout = parse_timeout(request_timeout) if request_timeout else None
    header = [not listed]

    def show(info: Any, obj: dict[str, Any]) -> None:
        if output == "name":
            out(object_name(obj))
        elif output == "yaml":
            out("---\n" + to_yaml(obj))
        elif output == "json":
            out(to_json(obj))
        else:
            out(
                render_tables(
                    [(info, [obj])],
                    all_namespaces=all_namespaces,
                    wide=output == "wide",
                    qualified=len(fetched.targets) > 1,
                    show_labels=show_labels,
                    headers=header[0],
                )
            )
            header[0] = False
        sys.stdout.flush()

    sys.stdout.flush()
    try:
        follow(fetched, since, selector, show, timeout)
    except KeyboardInterrupt:
        return


def _warn_if_no_control_plane() -> None:
    """Pod status comes from the runtime: without a control plane it is only the last one
    recorded (after a crash, pods may show Running while nothing runs), so say so."""
    from meshgate.cli.context import state_dir
    from meshgate.cli.output import warn
    from meshgate.client import Client

    home = state_dir()
    if home.is_dir() and not Client(home).available():
        warn("no control plane is running: pod status is as last recorded (meshgate up)")
