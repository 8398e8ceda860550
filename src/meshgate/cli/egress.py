"""``meshgate egress``: the move from ALLOW_ANY to REGISTRY_ONLY without breaking anything.

Rules of this module:
- ``app`` is the command group; each subcommand is one module's function registered here
  by one line (``discover`` below; ``dry-run`` lives in ``egress_dryrun``).
- ``discover`` is thin: the access-log API gives the entries (``GET /v1/accesslog``), the
  store gives the pods, Deployments and the MeshConfig; ``telemetry.discover`` and
  ``telemetry.discover_policy`` decide. Tables and YAML go to stdout, notes and warnings
  to stderr, so ``--emit yaml > egress.yaml`` is a file ``meshgate apply -f`` takes.
- No sidecar entry in the window is said plainly, with the reason that is most often
  true: sidecars log only when the MeshConfig sets ``accessLogFile`` (as on Istio).
"""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import urlencode

import typer

app = typer.Typer(
    help="Move egress from ALLOW_ANY to REGISTRY_ONLY: what workloads reach, what would break.",
    no_args_is_help=True,
    add_completion=False,
)

HEADER = ("NAMESPACE", "WORKLOAD", "SERVICE ACCOUNT", "HOST", "PORT", "PROTOCOL", "REQUESTS",
          "LAST SEEN")  # fmt: skip

DISCOVER_EXAMPLES = """Examples:

\b
  meshgate egress discover                       # every namespace, the last hour
  meshgate egress discover -n default --since 1d -o json
  meshgate egress discover --emit yaml > egress.yaml    # ServiceEntries for REGISTRY_ONLY
  meshgate egress discover --emit yaml --policy asm --egress-gateway egressgateway-a
  meshgate egress discover --emit yaml --policy authz   # + AuthorizationPolicies
"""

NO_SIDECAR_LOGS = (
    "no sidecar access logs recorded{scope} in the last {window}: sidecars log only when "
    "the MeshConfig sets accessLogFile (meshgate install --set "
    "meshConfig.accessLogFile=/dev/stdout -y, or accessLogFile: /dev/stdout in MeshConfig "
    "default), as on Istio; gateways' entries do not show what workloads reach directly."
)


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def _mesh_settings(mesh_configs: list[dict[str, Any]]) -> tuple[str, str, str]:
    """(trust domain, accessLogFile, outbound mode) of MeshConfig ``default``."""
    for m in mesh_configs:
        if (m.get("metadata") or {}).get("name") == "default":
            spec = m.get("spec") or {}
            mode = (spec.get("outboundTrafficPolicy") or {}).get("mode") or "ALLOW_ANY"
            return (
                str(spec.get("trustDomain") or "cluster.local"),
                str(spec.get("accessLogFile") or ""),
                str(mode),
            )
    return "cluster.local", "", "ALLOW_ANY"


def _yaml_stream(docs: list[tuple[dict[str, Any], list[str]]]) -> str:
    import yaml

    class Dumper(yaml.SafeDumper):
        # A value shared by two rules is written twice, never as a YAML alias.
        def ignore_aliases(self, data: Any) -> bool:
            return True

    parts = []
    for obj, comment in docs:
        lines = [f"# {c}" for c in comment]
        text = yaml.dump(obj, Dumper=Dumper, sort_keys=False, default_flow_style=False)
        lines.append(text.rstrip())
        parts.append("\n".join(lines))
    return "---\n" + "\n---\n".join(parts) + "\n" if parts else ""


def run_discover(
    *,
    namespace: str | None,
    since: str,
    output: str | None,
    emit: str | None,
    policy: str | None,
    gateway: str,
) -> None:
    from meshgate.cli.accesslog import parse_since
    from meshgate.cli.context import backend_errors, get_backend
    from meshgate.cli.kindargs import resolve_kind
    from meshgate.cli.pod_cmds import call_api
    from meshgate.cli.top import window_text
    from meshgate.telemetry import discover as d
    from meshgate.telemetry import discover_policy as dp

    if output not in (None, "table", "json"):
        _fail(f"unknown output format {output!r} (table, json)")
    if emit not in (None, "yaml"):
        _fail(f"--emit {emit!r}: only yaml is supported")
    if policy not in (None, "asm", "authz"):
        _fail(f"--policy {policy!r}: want asm (an ASMEgressTrafficPolicy) or authz")
    if policy and not emit:
        _fail("--policy needs --emit yaml")
    if emit and output:
        _fail("--emit yaml and -o are exclusive: --emit writes resources, -o the list")
    seconds = parse_since(since)
    if seconds <= 0:
        _fail("--since must be above 0")

    params = {"since": f"{seconds:g}"}
    if namespace:
        params["namespace"] = namespace
    data = call_api("GET", f"/v1/accesslog?{urlencode(params)}")
    entries: list[dict[str, Any]] = list(data.get("entries") or [])  # type: ignore[call-overload]
    with backend_errors():
        backend = get_backend()
        pods = backend.get(resolve_kind("pod"), namespace, None, None)
        deployments = backend.get(resolve_kind("deployment"), namespace, None, None)
        trust_domain, access_log_file, mode = _mesh_settings(
            backend.get(resolve_kind("meshconfig"), None, None, None)
        )
    found = d.discover(entries, d.workloads_of(pods, deployments), namespace)

    scope = f" in namespace {namespace}" if namespace else ""
    if not found.sidecar_entries:
        typer.echo(NO_SIDECAR_LOGS.format(scope=scope, window=window_text(seconds)), err=True)
    elif not access_log_file:
        typer.echo(
            "note: MeshConfig default sets no accessLogFile: sidecars are not logging now, "
            "so traffic since then is missing from this list.",
            err=True,
        )
    if found.sidecar_entries and not found.rows:
        typer.echo(
            f"No passthrough traffic{scope} in the last {window_text(seconds)}: every "
            "external request went to a registered service (or was refused)"
            + (" (the mesh is in REGISTRY_ONLY)." if mode == "REGISTRY_ONLY" else "."),
            err=True,
        )

    if emit:
        docs, warnings = d.service_entries(found.rows)
        if policy == "asm":
            more, notes = dp.asm_policy(found.rows, gateway)
            docs, warnings = docs + more, warnings + notes
        elif policy == "authz":
            more, notes = dp.authorization_policies(found.rows, gateway, trust_domain)
            docs, warnings = docs + more, warnings + notes
        for w in warnings:
            typer.echo(f"warning: {w}", err=True)
        typer.echo(_yaml_stream([(e.obj, e.comment) for e in docs]), nl=False)
        return
    if output == "json":
        typer.echo(
            json.dumps(
                {
                    "since": seconds,
                    "sidecarEntries": found.sidecar_entries,
                    "destinations": [r.to_json() for r in found.rows],
                },
                indent=2,
            )
        )
        return
    if not found.rows:
        return
    from meshgate.cli.tabular import format_table

    rows = [
        (
            r.workload.namespace,
            r.workload.ref,
            r.workload.service_account or "<unknown>",
            r.destination.host,
            str(r.destination.port),
            r.destination.protocol,
            str(r.count),
            d.iso(r.last_ms) or "-",
        )
        for r in found.rows
    ]
    typer.echo(format_table([HEADER, *rows]))


# Subcommands: ``discover`` here; ``dry-run`` (cli/egress_dryrun.py) joins the group in
# cli/main.py (``egress_dryrun.add_to(egress.app)``).
@app.command("discover", epilog=DISCOVER_EXAMPLES)
def discover(
    namespace: Annotated[
        str | None,
        typer.Option(
            "--namespace",
            "-n",
            metavar="NS",
            help="Only workloads in NS (default: every namespace).",
        ),
    ] = None,
    since: Annotated[
        str,
        typer.Option("--since", metavar="D", help="Requests that started in the last D (1h)."),
    ] = "1h",
    output: Annotated[
        str | None,
        typer.Option("-o", "--output", metavar="FORMAT", help="table (default) or json."),
    ] = None,
    emit: Annotated[
        str | None,
        typer.Option(
            "--emit",
            metavar="FORMAT",
            help="yaml: the ServiceEntries that keep this traffic working under REGISTRY_ONLY.",
        ),
    ] = None,
    policy: Annotated[
        str | None,
        typer.Option(
            "--policy",
            metavar="KIND",
            help="With --emit: also an ASMEgressTrafficPolicy (asm) or AuthorizationPolicies "
            "by workload on the egress gateway (authz).",
        ),
    ] = None,
    gateway: Annotated[
        str,
        typer.Option(
            "--egress-gateway",
            metavar="NAME",
            help="The egress gateway the policy names.",
        ),
    ] = "istio-egressgateway",
) -> None:
    """List the external destinations each workload reached under ALLOW_ANY.

    From the mesh-wide access log: every sidecar request that left through the passthrough
    (PassthroughCluster), by workload (the pod's Deployment, namespace and service
    account) and destination: HTTP by Host, TLS by SNI, other TCP by the IP address and
    port dialed; with request counts and when each was last seen. --emit yaml writes the
    ServiceEntries (one per host) that keep exactly that traffic working once the mesh is
    REGISTRY_ONLY; sidecars must log (MeshConfig accessLogFile) for anything to be found."""
    from meshgate.cli.context import namespace_flag

    run_discover(
        namespace=namespace_flag(namespace), since=since, output=output, emit=emit,
        policy=policy, gateway=gateway,
    )  # fmt: skip
