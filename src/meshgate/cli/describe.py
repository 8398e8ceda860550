"""``meshgate describe``: one readable page per resource.

Rules: ``describe KIND NAME...`` describes those objects, ``describe KIND`` every object of
the kind in the namespace; descriptions are separated by a blank line; missing names
print kubectl's NotFound line and exit 1.
"""

from __future__ import annotations

from typing import Annotated

import typer

from meshgate.cli.options import AllNamespaces, Namespace, Selector

EXAMPLES = """Examples:

\b
  meshgate describe se external-svc-http
  meshgate describe vs -n default
  meshgate describe istiogateway/istio-egressgateway -n istio-system
"""


def command(
    args: Annotated[
        list[str], typer.Argument(metavar="KIND [NAME]...", help="KIND [NAME...] or KIND/NAME...")
    ],
    namespace: Namespace = None,
    all_namespaces: AllNamespaces = False,
    selector: Selector = None,
) -> None:
    """Show details of a resource or group of resources."""
    from meshgate.cli.context import namespace_flag

    namespace = namespace_flag(namespace)
    from meshgate.cli.describe_text import describe
    from meshgate.cli.fetch import fetch
    from meshgate.cli.output import err, out
    from meshgate.cli.sources import DEFAULT_NAMESPACE

    ns = None if all_namespaces else (namespace or DEFAULT_NAMESPACE)
    fetched = fetch(args, ns, selector)
    pages = [describe(obj) for obj in fetched.objects]
    if pages:
        out("\n\n".join(pages))
    elif not fetched.missing:
        err(fetched.empty_message())
    for line in fetched.missing:
        err(line)
    if fetched.missing:
        raise typer.Exit(1)
