"""``meshgate trace POD URL``: which path one request takes through the mesh, and why.

Rules:
- The control plane walks the configuration the proxies ACKed (``trace.service``); this
  module only parses the flags and prints the result (words, or ``-o json``).
- The exit code is 0 whatever the verdict: a blocked request is an answer, not an error;
  1 when the trace itself cannot run (unknown pod, bad target, proxy not connected).
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from meshgate.cli.options import Namespace

EXAMPLES = """Examples:

\b
  meshgate trace sleep-xxx http://aliyun.com/           # HTTP: which route, which gateway
  meshgate trace deploy/sleep aliyun.com/admin --method POST -H 'x-user: me'
  meshgate trace sleep-xxx https://edition.cnn.com      # TLS: SNI edition.cnn.com, port 443
  meshgate trace sleep-xxx 198.51.100.10:443            # raw TCP to an address
  meshgate trace sleep-xxx aliyun.com -o json           # the same walk as data

\b
Verdicts: allowed, blocked (REGISTRY_ONLY, 502), denied (AuthorizationPolicy, 403),
no-route (gateway, 404), reset (no HTTP answer), no-cluster/no-endpoint (503),
refused (SSRF guard or egressEnforcement), redirect, direct-response, unresolved.
"""


def command(
    pod: Annotated[str, typer.Argument(metavar="POD", help="POD, POD.NAMESPACE or deploy/NAME.")],
    target: Annotated[
        str,
        typer.Argument(
            metavar="URL",
            help="http://host[:port]/path (or host/path), https://host (TLS with SNI), "
            "or host:port / IP:port for a raw TCP connection.",
        ),
    ],
    namespace: Namespace = None,
    method: Annotated[
        str, typer.Option("--method", "-X", metavar="METHOD", help="HTTP method (GET).")
    ] = "GET",
    header: Annotated[
        list[str] | None,
        typer.Option("-H", "--header", metavar="'NAME: VALUE'", help="A request header (repeat)."),
    ] = None,
    output: Annotated[
        str,
        typer.Option("-o", "--output", metavar="FORMAT", help="text (default) or json."),
    ] = "text",
) -> None:
    """Trace one request from a pod: listener, route, cluster, gateway, RBAC, verdict."""
    from meshgate.cli.context import namespace_flag
    from meshgate.cli.pod_cmds import call_api, pod_name
    from meshgate.trace.render import render
    from meshgate.trace.target import parse_header, parse_target

    if output not in ("text", "json"):
        typer.echo(f"error: -o {output}: use text or json", err=True)
        raise typer.Exit(1)
    try:
        headers = [list(parse_header(h)) for h in header or []]
        parse_target(target, method)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    ns = namespace_flag(namespace)
    if ns is None and "/" not in pod and "." in pod:
        pod, ns = pod.split(".", 1)
    ns = ns or "default"
    pod = pod_name(pod, ns)
    body = {"namespace": ns, "pod": pod, "target": target, "method": method, "headers": headers}
    result = call_api("POST", "/v1/trace", body)
    if output == "json":
        typer.echo(json.dumps(result, indent=2))
    else:
        typer.echo(render(result))


def register(app: typer.Typer) -> None:
    from meshgate.cli.helpfmt import Command

    app.command("trace", cls=Command, epilog=EXAMPLES, rich_help_panel="Mesh")(command)
