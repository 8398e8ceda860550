"""``meshgate get``: list or show resources as kubectl does.

Rules: tables on stdout with kubectl's columns (NAMESPACE first with ``-A``; ``kind/name``
names when several kinds are listed); ``-o json|yaml`` prints only the document: the
object itself for one named object, otherwise a ``List``; ``-o name`` prints
``kind.group/name``. Missing names print kubectl's NotFound line to stderr and make the
exit code 1 after everything found has been printed. An empty result says so on stderr.
"""

from __future__ import annotations

from typing import Annotated

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
            help="Output format: wide, yaml, json, name or jsonpath=TEMPLATE.",
        ),
    ] = "",
    show_labels: Annotated[
        bool, typer.Option("--show-labels", help="Add a LABELS column.")
    ] = False,
) -> None:
    """Display one or many resources."""
    from meshgate.cli.context import namespace_flag

    namespace = namespace_flag(namespace)
    from meshgate.cli.fetch import fetch
    from meshgate.cli.output import err, fail, out
    from meshgate.cli.sources import DEFAULT_NAMESPACE

    template = None
    if output.startswith("jsonpath="):
        template, output = output[len("jsonpath=") :], "jsonpath"
    elif output not in FORMATS:
        fail(
            f'unable to match a printer suitable for the output format "{output}", '
            "allowed formats are: json,jsonpath=TEMPLATE,name,wide,yaml"
        )
    ns = None if all_namespaces else (namespace or DEFAULT_NAMESPACE)
    fetched = fetch(args, ns, selector)
    objects, single, found = fetched.objects, fetched.single, fetched.found
    if template is not None:
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
        )
        if text:
            out(text)
    if not objects and not fetched.missing and output not in ("json", "yaml", "jsonpath"):
        err(fetched.empty_message())
    for line in fetched.missing:
        err(line)
    if fetched.missing:
        raise typer.Exit(1)
