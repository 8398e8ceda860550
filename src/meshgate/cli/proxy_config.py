"""``meshgate proxy-config``: what a proxy really runs, read from its own Envoy admin.

Rules:
- The truth is the proxy's ``/config_dump`` (and ``/clusters`` for endpoint health), fetched
  by the control plane inside the pod's namespace; never the control plane's intent, so
  a rejected (NACKed) push shows as the config the proxy still serves.
- Tables follow ``istioctl proxy-config``: clusters by SERVICE FQDN, PORT, SUBSET,
  DIRECTION, TYPE; listeners by ADDRESSES, PORT, MATCH, DESTINATION; routes by NAME,
  VHOST NAME, DOMAINS, MATCH, VIRTUAL SERVICE; endpoints by ENDPOINT, STATUS, CLUSTER.
  ``-o json`` prints the matching raw Envoy objects instead. Secrets by RESOURCE NAME, TYPE,
  STATUS (ACTIVE, or WARMING: asked for, not delivered), VALID CERT, SERIAL NUMBER, NOT
  AFTER, NOT BEFORE, as istioctl; their ``-o json`` is Envoy's ``SecretsConfigDump`` in
  istioctl's proto3 JSON names. A private key is never printed (Envoy redacts it), nor is
  the proxy's xDS credential in its bootstrap.
- The table builders are pure functions of the dumps, so they are tested without Envoy.
"""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import quote

import typer

from meshgate.cli.options import Namespace

Obj = dict[str, Any]
Rows = list[list[str]]

KINDS = {
    "cluster": "cluster",
    "clusters": "cluster",
    "c": "cluster",
    "listener": "listener",
    "listeners": "listener",
    "l": "listener",
    "route": "route",
    "routes": "route",
    "r": "route",
    "endpoint": "endpoint",
    "endpoints": "endpoint",
    "ep": "endpoint",
    "all": "all",
    "bootstrap": "bootstrap",
    "b": "bootstrap",
    "secret": "secret",
    "secrets": "secret",
    "s": "secret",
}

EXAMPLES = """Examples:

\b
  meshgate proxy-config cluster sleep-xxx               # the sidecar's clusters
  meshgate proxy-config route istio-egressgateway-xxx.istio-system
  meshgate pc listener deploy/sleep --port 80
  meshgate pc endpoint sleep-xxx --cluster 'outbound|80||aliyun.com'
  meshgate pc cluster sleep-xxx -o json
  meshgate pc secret istio-egressgateway-xxx -n istio-system   # its mesh identity (mTLS)
"""


# -- reading the dumps -------------------------------------------------------------------


def _section(dump: Obj, name: str) -> Obj:
    for cfg in dump.get("configs") or []:
        if str(cfg.get("@type", "")).endswith("." + name):
            section: Obj = cfg
            return section
    return {}


def clusters(dump: Obj) -> list[Obj]:
    sec = _section(dump, "ClustersConfigDump")
    items = [c.get("cluster") or {} for c in sec.get("static_clusters") or []]
    items += [c.get("cluster") or {} for c in sec.get("dynamic_active_clusters") or []]
    return sorted(items, key=lambda c: str(c.get("name", "")))


def listeners(dump: Obj) -> list[Obj]:
    sec = _section(dump, "ListenersConfigDump")
    items = [x.get("listener") or {} for x in sec.get("static_listeners") or []]
    for x in sec.get("dynamic_listeners") or []:
        state = x.get("active_state") or x.get("warming_state") or {}
        if state.get("listener"):
            items.append(state["listener"])
    return sorted(items, key=lambda x: str(x.get("name", "")))


def route_configs(dump: Obj) -> list[Obj]:
    sec = _section(dump, "RoutesConfigDump")
    items = [r.get("route_config") or {} for r in sec.get("static_route_configs") or []]
    items += [r.get("route_config") or {} for r in sec.get("dynamic_route_configs") or []]
    return sorted(items, key=lambda r: str(r.get("name", "")))


# -- tables ------------------------------------------------------------------------------


def _split_cluster_name(name: str) -> tuple[str, str, str, str]:
    """(fqdn, port, subset, direction) of Istio's ``outbound|80|subset|host`` names."""
    parts = name.split("|")
    if len(parts) == 4:
        direction, port, subset, host = parts
        return host or "-", port or "-", subset or "-", direction
    return name, "-", "-", "-"


def cluster_rows(dump: Obj, fqdn: str | None = None, port: int | None = None) -> Rows:
    rows = [["SERVICE FQDN", "PORT", "SUBSET", "DIRECTION", "TYPE"]]
    for c in clusters(dump):
        host, p, subset, direction = _split_cluster_name(str(c.get("name", "")))
        if fqdn and fqdn not in (host, str(c.get("name"))):
            continue
        if port is not None and p != str(port):
            continue
        kind = str(c.get("type") or ("EDS" if c.get("eds_cluster_config") is not None else "-"))
        if "cluster_type" in c:
            kind = str((c["cluster_type"] or {}).get("name", kind)).rsplit(".", 1)[-1]
        rows.append([host, p, subset, direction, kind])
    return rows


def _address(listener: Obj) -> tuple[str, str]:
    sock = (listener.get("address") or {}).get("socket_address") or {}
    return str(sock.get("address", "-")), str(sock.get("port_value", "-"))


def _chain_match(chain: Obj) -> str:
    m = chain.get("filter_chain_match") or {}
    parts = []
    if m.get("destination_port") is not None:
        parts.append(f"dport {m['destination_port']}")
    if m.get("server_names"):
        parts.append("SNI: " + ",".join(m["server_names"]))
    if m.get("transport_protocol"):
        parts.append(f"transport: {m['transport_protocol']}")
    if m.get("application_protocols"):
        parts.append("ALPN: " + ",".join(m["application_protocols"]))
    if m.get("prefix_ranges"):
        parts.append(
            "addr: "
            + ",".join(
                f"{r.get('address_prefix')}/{r.get('prefix_len', 32)}" for r in m["prefix_ranges"]
            )
        )
    return "; ".join(parts) or "ALL"


def _chain_destination(chain: Obj) -> str:
    for f in chain.get("filters") or []:
        cfg = f.get("typed_config") or {}
        if "rds" in cfg:
            return f"Route: {cfg['rds'].get('route_config_name', '-')}"
        if "route_config" in cfg:
            return f"Inline Route: {cfg['route_config'].get('name', '-')}"
        if cfg.get("cluster"):
            return f"Cluster: {cfg['cluster']}"
        if cfg.get("weighted_clusters"):
            names = [w.get("name", "") for w in cfg["weighted_clusters"].get("clusters") or []]
            return "Clusters: " + ",".join(names)
    return "-"


def listener_rows(dump: Obj, port: int | None = None) -> Rows:
    rows = [["NAME", "ADDRESSES", "PORT", "MATCH", "DESTINATION"]]
    for lst in listeners(dump):
        addr, p = _address(lst)
        if port is not None and p != str(port):
            continue
        chains = list(lst.get("filter_chains") or [])
        if lst.get("default_filter_chain"):
            chains.append({**lst["default_filter_chain"], "filter_chain_match": {}})
        for chain in chains or [{}]:
            rows.append([str(lst.get("name", "-")), addr, p, _chain_match(chain),
                         _chain_destination(chain)])  # fmt: skip
    return rows


def _route_match(route: Obj) -> str:
    m = route.get("match") or {}
    for key, shown in (("path", "{}"), ("prefix", "{}*"), ("path_separated_prefix", "{}/*")):
        if key in m:
            return shown.format(m[key]) if m[key] != "/" or key != "prefix" else "/*"
    if "safe_regex" in m:
        return f"regex {m['safe_regex'].get('regex', '')}"
    return "-"


def _virtual_service(route: Obj) -> str:
    config = ((route.get("metadata") or {}).get("filter_metadata") or {}).get("istio") or {}
    ref = str(config.get("config", ""))
    if "/virtual-service/" in ref:  # /apis/networking.istio.io/v1/namespaces/NS/virtual-service/N
        ns = ref.split("/namespaces/", 1)[1].split("/", 1)[0]
        return f"{ref.rsplit('/', 1)[1]}.{ns}"
    return "-"


def route_rows(dump: Obj, name: str | None = None) -> Rows:
    rows = [["NAME", "VHOST NAME", "DOMAINS", "MATCH", "ROUTE", "VIRTUAL SERVICE"]]
    for rc in route_configs(dump):
        if name and rc.get("name") != name:
            continue
        for vh in rc.get("virtual_hosts") or []:
            domains = list(vh.get("domains") or [])
            shown = domains[0] if domains else "-"
            if len(domains) > 1:
                shown += f" +{len(domains) - 1} more"
            for r in vh.get("routes") or []:
                if "direct_response" in r:
                    action = f"direct {r['direct_response'].get('status', '-')}"
                elif "redirect" in r:
                    action = "redirect"
                else:
                    rt = r.get("route") or {}
                    action = str(rt.get("cluster") or "")
                    if not action and rt.get("weighted_clusters"):
                        ws = rt["weighted_clusters"].get("clusters") or []
                        action = ",".join(f"{w.get('name')}:{w.get('weight')}" for w in ws)
                rows.append([str(rc.get("name", "-")), str(vh.get("name", "-")), shown,
                             _route_match(r), action or "-", _virtual_service(r)])  # fmt: skip
    return rows


def endpoint_rows(clusters_json: Obj, cluster: str | None = None) -> Rows:
    rows = [["ENDPOINT", "STATUS", "OUTLIER CHECK", "CLUSTER"]]
    for cs in sorted(clusters_json.get("cluster_statuses") or [], key=lambda c: c.get("name")):
        if cluster and cs.get("name") != cluster:
            continue
        for h in cs.get("host_statuses") or []:
            address = h.get("address") or {}
            sock = address.get("socket_address") or {}
            health = h.get("health_status") or {}
            status = str(health.get("eds_health_status") or "HEALTHY")
            if health.get("failed_active_health_check"):
                status = "UNHEALTHY"
            outlier = "FAILED" if health.get("failed_outlier_check") else "OK"
            if "pipe" in address:
                endpoint = f"unix://{address['pipe'].get('path', '')}"
            else:
                endpoint = f"{sock.get('address', '-')}:{sock.get('port_value', '-')}"
            rows.append([endpoint, status, outlier, str(cs.get("name"))])
    return rows


def secrets(dump: Obj) -> list[Obj]:
    """The proxy's active secrets, each certificate read: name, type, validity, SANs."""
    import base64
    import datetime

    from cryptography import x509

    out = []
    sec = _section(dump, "SecretsConfigDump")
    for item in sec.get("dynamic_warming_secrets") or []:
        # Asked for, never delivered (a credentialName Secret that does not exist yet).
        raw = item.get("secret") or {}
        name = str(raw.get("name") or item.get("name") or "")
        out.append({"name": name, "type": "", "status": "WARMING"})
    for item in sec.get("dynamic_active_secrets") or []:
        raw = item.get("secret") or {}
        name = str(raw.get("name") or item.get("name") or "")
        if "tls_certificate" in raw:
            kind, source = "Cert Chain", raw["tls_certificate"].get("certificate_chain") or {}
        elif "validation_context" in raw:
            kind, source = "CA", raw["validation_context"].get("trusted_ca") or {}
        else:
            continue
        entry: Obj = {"name": name, "type": kind, "status": "ACTIVE"}
        pem = base64.b64decode(source["inline_bytes"]) if "inline_bytes" in source else b""
        certs = x509.load_pem_x509_certificates(pem) if pem else []
        if certs:
            cert = certs[0]
            now = datetime.datetime.now(datetime.UTC)
            entry["validCert"] = cert.not_valid_before_utc <= now <= cert.not_valid_after_utc
            entry["serialNumber"] = format(cert.serial_number, "x")
            entry["notAfter"] = cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
            entry["notBefore"] = cert.not_valid_before_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
            try:
                ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
                sans = ext.value
                uris = sans.get_values_for_type(x509.UniformResourceIdentifier)
                entry["sans"] = [str(v) for v in uris] + sans.get_values_for_type(x509.DNSName)
            except x509.ExtensionNotFound:
                entry["sans"] = []
        out.append(entry)
    return sorted(out, key=lambda e: (e["status"] != "WARMING", e["type"] == "CA", e["name"]))


def secrets_dump(dump: Obj) -> Obj:
    """Envoy's ``SecretsConfigDump`` section as ``istioctl proxy-config secret -o json``
    prints it: proto3 JSON names (``dynamicActiveSecrets``, ``tlsCertificate``...), so
    the Istio tasks' ``jq`` lines work unchanged. Fields these protos do not know are left
    out, as istioctl (which reads the dump into the same message) leaves them out."""
    from envoy.admin.v3 import config_dump_pb2
    from envoy.extensions.transport_sockets.tls.v3 import secret_pb2  # noqa: F401 (Any type)
    from google.protobuf import json_format

    section = {k: v for k, v in _section(dump, "SecretsConfigDump").items() if k != "@type"}
    message = json_format.ParseDict(
        section, config_dump_pb2.SecretsConfigDump(), ignore_unknown_fields=True
    )
    converted: Obj = json_format.MessageToDict(message)
    return converted


def secret_rows(dump: Obj) -> Rows:
    rows = [["RESOURCE NAME", "TYPE", "STATUS", "VALID CERT", "SERIAL NUMBER", "NOT AFTER",
             "NOT BEFORE"]]  # fmt: skip
    for e in secrets(dump):
        valid = "" if "validCert" not in e else str(e["validCert"]).lower()
        rows.append([e["name"], e["type"], e["status"], valid, e.get("serialNumber", ""),
                     e.get("notAfter", ""), e.get("notBefore", "")])  # fmt: skip
    return rows


def redact_credential(bootstrap: Obj) -> Obj:
    """The bootstrap with the proxy's xDS credential (initial metadata) blanked out."""
    ads = ((bootstrap.get("dynamic_resources") or {}).get("ads_config")) or {}
    for service in ads.get("grpc_services") or []:
        for header in service.get("initial_metadata") or []:
            header["value"] = "[redacted]"
    return bootstrap


def format_rows(rows: Rows) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "     ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


# -- the verb ----------------------------------------------------------------------------


def _fetch(namespace: str, name: str, path: str) -> Obj:
    from meshgate.cli.pod_cmds import call_api

    data = call_api("GET", f"/v1/proxy-admin?namespace={namespace}&name={name}&path={quote(path)}")
    result: Obj = json.loads(str(data["body"]))
    return result


KIND_HELP = "cluster | listener | route | endpoint | secret | all | bootstrap (c, l, r, ep, s, b)"


def command(
    kind: Annotated[str, typer.Argument(metavar="TYPE", help=KIND_HELP)],
    pod: Annotated[
        str, typer.Argument(metavar="POD", help="POD, POD.NAMESPACE, pod/NAME or deploy/NAME.")
    ],
    namespace: Namespace = None,
    output: Annotated[
        str,
        typer.Option(
            "-o",
            "--output",
            metavar="FORMAT",
            help="short (a table, the default) or json (the raw Envoy objects).",
        ),
    ] = "short",
    fqdn: Annotated[
        str | None,
        typer.Option("--fqdn", metavar="HOST", help="Only clusters of this service host."),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option("--port", metavar="N", help="Only clusters or listeners of this port."),
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", metavar="NAME", help="Only the route config so named.")
    ] = None,
    cluster: Annotated[
        str | None,
        typer.Option(
            "--cluster", metavar="CLUSTER", help="Only endpoints of this cluster (its full name)."
        ),
    ] = None,
) -> None:
    """Show the Envoy configuration a proxy runs: clusters, listeners, routes, endpoints."""
    from meshgate.cli.context import namespace_flag
    from meshgate.cli.pod_cmds import pod_name

    which = KINDS.get(kind.lower())
    if which is None:
        typer.echo(f"error: unknown config type {kind!r}; use one of {', '.join(KINDS)}", err=True)
        raise typer.Exit(1)
    ns = namespace_flag(namespace)
    if ns is None and "/" not in pod and "." in pod:
        pod, ns = pod.split(".", 1)
    ns = ns or "default"
    pod = pod_name(pod, ns)
    if which == "endpoint":
        data = _fetch(ns, pod, "/clusters?format=json")
        if output == "json":
            typer.echo(json.dumps(data, indent=2))
        else:
            typer.echo(format_rows(endpoint_rows(data, cluster)))
        return
    dump = _fetch(ns, pod, "/config_dump")
    redact_credential(_section(dump, "BootstrapConfigDump").get("bootstrap") or {})
    if which == "secret":
        if output == "json":
            typer.echo(json.dumps(secrets_dump(dump), indent=2))
        else:
            typer.echo(format_rows(secret_rows(dump)))
        return
    if output == "json":
        raw: Any = {
            "cluster": clusters(dump),
            "listener": listeners(dump),
            "route": route_configs(dump),
            "bootstrap": _section(dump, "BootstrapConfigDump").get("bootstrap", {}),
            "all": dump,
        }[which]
        typer.echo(json.dumps(raw, indent=2))
        return
    if which == "bootstrap":
        typer.echo(json.dumps(_section(dump, "BootstrapConfigDump").get("bootstrap", {}), indent=2))
        return
    tables = {
        "cluster": lambda: cluster_rows(dump, fqdn, port),
        "listener": lambda: listener_rows(dump, port),
        "route": lambda: route_rows(dump, name),
    }
    order = ["cluster", "listener", "route"] if which == "all" else [which]
    typer.echo("\n\n".join(format_rows(tables[k]()) for k in order))
