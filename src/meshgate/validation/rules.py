"""Single-resource structural rules, beyond what the types already enforce.

Rules of this module:
- A rule looks at one resource only (cross-resource checks belong to ``analysis``) and
  reports ``Finding``s: a field path, a message, a stable code and a severity. It never
  raises and never stops at the first finding.
- Rules read effective values (``effective_resolution``...) so an omitted field is judged
  by what it means, not by its absence.
- Codes are stable; add new ones at the end of the table.

| code   | sev  | rule |
|--------|------|------|
| MG1001 | E    | hostnames are RFC 1123; a wildcard only as the leftmost label (``*.a.com``) |
| MG1002 | E    | ``*`` alone is not a ServiceEntry host (nor a mesh-bound VirtualService host) |
| MG1003 | E    | port numbers are 1..65535 (Istio, Kubernetes, AuthorizationPolicy ports) |
| MG1004 | E    | ServiceEntry port numbers are unique |
| MG1005 | E    | with several destinations, route weights sum to 100 |
| MG1006 | E    | ServiceEntry resolution DNS/DNS_ROUND_ROBIN with a wildcard host needs endpoints |
| MG1007 | E    | ServiceEntry resolution NONE cannot have endpoints |
| MG1008 | E    | CIDR addresses only with resolution NONE or STATIC |
| MG1009 | E    | every Gateway server has hosts; a Gateway has servers |
| MG1010 | E/W  | a VirtualService has hosts; without, it is a delegate (no gateways, tls, tcp) |
| MG1011 | E    | a Deployment's selector is not empty and matches its template labels |
| MG1012 | E    | the MeshConfig is named ``default`` |
| MG1013 | E    | ServiceEntry ``workloadSelector`` and ``endpoints`` are exclusive |
| MG1014 | E    | ServiceEntry DNS_ROUND_ROBIN has at most one endpoint |
| MG1015 | E    | port protocols are ones Istio knows (HTTP, HTTPS, GRPC, HTTP2, TCP, TLS...) |
| MG1016 | E    | port names are unique (ServiceEntry, Gateway servers, Service ports) |
| MG1017 | E    | addresses, subnets and ipBlocks are IPs or CIDRs |
| MG1018 | E    | ServiceEntry endpoint ports name ports of the ServiceEntry |
| MG1019 | E    | AuthorizationPolicy ``selector`` and ``targetRef(s)`` are exclusive |
| MG1020 | E    | DestinationRule subset names are unique |
| MG1021 | E    | an HTTP route has exactly one of route, redirect, directResponse, delegate |
| MG1022 | E    | a ServiceEntry DYNAMIC_DNS has only wildcard hosts and is MESH_EXTERNAL |
| MG1023 | E    | Sidecar egress hosts are ``namespace/dnsName`` |
| MG1024 | E    | ``gateways`` entries are ``mesh``, ``name`` or ``namespace/name`` |
| MG1025 | E    | AuthorizationPolicy ``serviceAccounts`` exclude principals and namespaces |
| MG1026 | E    | route weights are not negative |
| MG1027 | W    | ASMEgressTrafficPolicy lives in namespace ``istio-egress`` |
| MG1028 | W    | IstioGateway lives in namespace ``istio-system`` |
| MG1029 | E    | a match block is not empty; uri/scheme/method/authority set exact/prefix/regex |
| MG1030 | E    | ``metadata.name`` (and namespace) are valid Kubernetes names |
| MG1031 | E    | a TLS route matches on sniHosts; TCP/TLS routes have destinations |
| MG1032 | E    | header match names are lowercase |
| MG1033 | E    | percentages are within 0..100 |
| MG1034 | E    | ``exportTo`` entries are ``.``, ``*`` or a namespace |
| MG1035 | E    | HTTPS/TLS Gateway servers have ``tls``; TLS modes have the fields they need |
| MG1036 | E    | AuthorizationPolicy CUSTOM needs ``provider``; ``provider`` only with CUSTOM |
| MG1037 | E    | AuthorizationPolicy sources, operations and conditions are not empty |
| MG1038 | E    | rewrite sets ``uri`` or ``uriRegexRewrite``, not both |
| MG1039 | E    | a Pod spec has containers with unique names |
| MG1040 | E    | a Service with several ports names each; ``targetPort`` is a port or a port name |
| MG1041 | W    | ServiceEntry ``workloadSelector`` applies only to MESH_INTERNAL |
| MG1042 | E    | ``egressProxy`` only with outbound mode ALLOW_ANY |
| MG1043 | E    | a ``unix://`` endpoint needs resolution STATIC and exactly one port |
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from meshgate.api.kinds import alibabacloud as ali
from meshgate.api.kinds import istio_networking as net
from meshgate.api.kinds import istio_security as sec
from meshgate.api.kinds import kubernetes as kube
from meshgate.api.kinds import meshgate_kinds as mg
from meshgate.api.meta import Resource
from meshgate.api.problems import Severity
from meshgate.api.registry import by_group_kind
from meshgate.validation.names import (
    address_problem,
    hostname_problem,
    label_name_problem,
    namespaced_host_problem,
    object_name_problem,
    port_name_problem,
    port_problem,
)

Path = tuple[str | int, ...]

ISTIO_PROTOCOLS = frozenset(
    {"HTTP", "HTTPS", "GRPC", "GRPC-WEB", "HTTP2", "MONGO", "MYSQL", "REDIS", "TCP", "TLS", "UDP"}
)
GATEWAY_PROTOCOLS = frozenset({"HTTP", "HTTPS", "GRPC", "GRPC-WEB", "HTTP2", "MONGO", "TCP", "TLS"})


@dataclass(frozen=True)
class Finding:
    path: Path
    message: str
    code: str
    severity: Severity = Severity.ERROR


class Findings:
    """Collects findings; ``at`` gives a view that prefixes paths."""

    def __init__(self, items: list[Finding] | None = None, prefix: Path = ()) -> None:
        self.items: list[Finding] = [] if items is None else items
        self.prefix = prefix

    def at(self, *path: str | int) -> Findings:
        return Findings(self.items, self.prefix + path)

    def error(self, code: str, message: str, *path: str | int) -> None:
        self.items.append(Finding(self.prefix + path, message, code))

    def warn(self, code: str, message: str, *path: str | int) -> None:
        self.items.append(Finding(self.prefix + path, message, code, Severity.WARNING))

    def check(self, code: str, reason: str | None, *path: str | int) -> None:
        if reason is not None:
            self.error(code, reason, *path)


R = TypeVar("R", bound=Resource)
_RULES: dict[type[Resource], list[Callable[[Any, Findings], None]]] = {}


def rule(kind: type[R]) -> Callable[[Callable[[R, Findings], None]], Callable[[R, Findings], None]]:
    def add(fn: Callable[[R, Findings], None]) -> Callable[[R, Findings], None]:
        _RULES.setdefault(kind, []).append(fn)
        return fn

    return add


def check_resource(resource: Resource) -> list[Finding]:
    """Every finding of every rule that applies to ``resource``."""
    out = Findings()
    _metadata(resource, out)
    for kind, fns in _RULES.items():
        if isinstance(resource, kind):
            for fn in fns:
                fn(resource, out)
    return out.items


# --- shared ----------------------------------------------------------------------------


def _metadata(resource: Resource, out: Findings) -> None:
    meta = out.at("metadata")
    meta.check("MG1030", object_name_problem(resource.metadata.name), "name")
    info = by_group_kind(resource.group, resource.kind)
    if resource.metadata.namespace and (info is None or info.namespaced):
        meta.check("MG1030", label_name_problem(resource.metadata.namespace), "namespace")


def _ports_unique(
    out: Findings, items: Sequence[Any], attr: str, code: str, what: str, *field: str
) -> None:
    counts = Counter(getattr(p, attr) for p in items if getattr(p, attr) is not None)
    for i, item in enumerate(items):
        value = getattr(item, attr)
        if value is not None and counts[value] > 1:
            out.error(code, f"duplicate {what} {value!r}", i, *field)


def _protocol(out: Findings, protocol: str | None, known: frozenset[str], *path: str | int) -> None:
    if protocol is not None and protocol.upper() not in known:
        names = ", ".join(sorted(known))
        out.error("MG1015", f"unknown protocol {protocol!r}; use one of {names}", *path)


def _export_to(out: Findings, export_to: list[str] | None) -> None:
    for i, ns in enumerate(export_to or []):
        if ns not in (".", "*") and label_name_problem(ns.lstrip("~")) is not None:
            out.error(
                "MG1034", f"invalid exportTo {ns!r}: use '.', '*' or a namespace", "exportTo", i
            )


def _percent(out: Findings, value: float | None, *path: str | int) -> None:
    if value is not None and not 0 <= value <= 100:
        out.error("MG1033", f"percentage {value} is out of range 0..100", *path)


def _addresses(out: Findings, values: Iterable[str] | None, *path: str | int) -> None:
    for i, value in enumerate(values or []):
        out.check("MG1017", address_problem(value), *path, i)


def _destination(out: Findings, dest: net.Destination) -> None:
    out.check("MG1001", hostname_problem(dest.host, allow_star=False), "host")
    if dest.port is not None and dest.port.number is not None:
        out.check("MG1003", port_problem(dest.port.number), "port", "number")


def _weights(
    out: Findings, routes: Sequence[net.HTTPRouteDestination | net.RouteDestination]
) -> None:
    for i, r in enumerate(routes):
        if r.weight is not None and r.weight < 0:
            out.error("MG1026", f"weight {r.weight} is negative", i, "weight")
    if len(routes) > 1:
        total = sum(r.weight or 0 for r in routes)
        if total != 100:
            out.error("MG1005", f"weights of {len(routes)} destinations sum to {total}, not 100")


def _gateways(out: Findings, gateways: list[str] | None) -> None:
    for i, gw in enumerate(gateways or []):
        if gw == "mesh":
            continue
        namespace, slash, name = gw.partition("/")
        if not slash:
            namespace, name = "", gw
        bad = object_name_problem(name) or (label_name_problem(namespace) if slash else None)
        if bad is not None:
            out.error(
                "MG1024", f"invalid gateway reference {gw!r}: use mesh, name or namespace/name", i
            )


# --- ServiceEntry ----------------------------------------------------------------------


@rule(net.ServiceEntry)
def _service_entry(se: net.ServiceEntry, findings: Findings) -> None:
    out = findings.at("spec")
    spec = se.spec
    resolution = spec.effective_resolution
    if not spec.hosts:
        out.error("MG1001", "at least one host is required", "hosts")
    for i, host in enumerate(spec.hosts):
        if host == "*":
            out.error("MG1002", '"*" alone is not a valid ServiceEntry host', "hosts", i)
        else:
            out.check("MG1001", hostname_problem(host), "hosts", i)
    wildcard = [h for h in spec.hosts if h.startswith("*")]
    _addresses(out, spec.addresses, "addresses")
    for i, addr in enumerate(spec.addresses or []):
        if "/" in addr and resolution not in ("NONE", "STATIC"):
            out.error(
                "MG1008", f"CIDR address {addr!r} needs resolution NONE or STATIC", "addresses", i
            )
    ports = spec.ports or []
    for i, port in enumerate(ports):
        out.check("MG1003", port_problem(port.number), "ports", i, "number")
        if port.target_port is not None:
            out.check("MG1003", port_problem(port.target_port), "ports", i, "targetPort")
        _protocol(out, port.protocol, ISTIO_PROTOCOLS, "ports", i, "protocol")
    _ports_unique(out.at("ports"), ports, "number", "MG1004", "port number", "number")
    _ports_unique(out.at("ports"), ports, "name", "MG1016", "port name", "name")
    endpoints = spec.endpoints
    if spec.workload_selector is not None and endpoints is not None:
        out.error(
            "MG1013", "set either workloadSelector or endpoints, not both", "workloadSelector"
        )
    if spec.workload_selector is not None and spec.effective_location != "MESH_INTERNAL":
        out.warn(
            "MG1041", "workloadSelector applies only to MESH_INTERNAL services", "workloadSelector"
        )
    if resolution == "NONE" and endpoints is not None:
        out.error("MG1007", "resolution NONE cannot have endpoints", "endpoints")
    if resolution in ("DNS", "DNS_ROUND_ROBIN") and wildcard and not endpoints:
        out.error(
            "MG1006",
            f"resolution {resolution} with wildcard host {wildcard[0]!r} needs endpoints "
            "(hosts must be FQDNs to be resolved)",
            "resolution",
        )
    if resolution == "DNS_ROUND_ROBIN" and endpoints is not None and len(endpoints) > 1:
        out.error("MG1014", "resolution DNS_ROUND_ROBIN takes at most one endpoint", "endpoints")
    if resolution == "DYNAMIC_DNS":
        if len(wildcard) != len(spec.hosts):
            out.error("MG1022", "resolution DYNAMIC_DNS needs wildcard hosts only", "hosts")
        if spec.effective_location != "MESH_EXTERNAL":
            out.error("MG1022", "resolution DYNAMIC_DNS needs location MESH_EXTERNAL", "location")
    names = {p.name for p in ports}
    for i, ep in enumerate(endpoints or []):
        at = out.at("endpoints", i)
        address = ep.address or ""
        if address.startswith("unix://"):
            if resolution != "STATIC" or len(ports) != 1:
                at.error(
                    "MG1043", "a unix:// endpoint needs resolution STATIC and one port", "address"
                )
        elif not address and not ep.network:
            at.error("MG1017", "endpoint address is required", "address")
        elif address and resolution == "STATIC":
            at.check("MG1017", address_problem(address), "address")
        elif address:
            at.check("MG1001", hostname_problem(address), "address")
        for name, number in (ep.ports or {}).items():
            if name not in names:
                at.error(
                    "MG1018",
                    f"endpoint port {name!r} is not a port name of this ServiceEntry",
                    "ports",
                    name,
                )
            at.check("MG1003", port_problem(number), "ports", name)
    _export_to(out, spec.export_to)


# --- Gateway ---------------------------------------------------------------------------


@rule(net.Gateway)
def _gateway(gw: net.Gateway, findings: Findings) -> None:
    out = findings.at("spec")
    servers = gw.spec.servers
    if not servers:
        out.error("MG1009", "a Gateway needs at least one server", "servers")
    for i, server in enumerate(servers):
        at = out.at("servers", i)
        at.check("MG1003", port_problem(server.port.number), "port", "number")
        _protocol(at, server.port.protocol, GATEWAY_PROTOCOLS, "port", "protocol")
        if not server.hosts:
            at.error("MG1009", "a server needs at least one host", "hosts")
        for j, host in enumerate(server.hosts or []):
            at.check("MG1001", namespaced_host_problem(host, require_namespace=False), "hosts", j)
        _server_tls(at, server)
    _ports_unique(
        out.at("servers"), [s.port for s in servers], "name", "MG1016", "port name", "port", "name"
    )


def _server_tls(out: Findings, server: net.Server) -> None:
    protocol = server.port.protocol.upper()
    tls = server.tls
    if tls is None:
        if protocol in ("HTTPS", "TLS"):
            out.error("MG1035", f"a {protocol} server needs tls settings", "tls")
        return
    mode = tls.effective_mode
    at = out.at("tls")
    has_files = tls.server_certificate is not None or tls.private_key is not None
    has_creds = bool(tls.credential_name or tls.credential_names or tls.tls_certificates)
    if mode in ("SIMPLE", "MUTUAL", "OPTIONAL_MUTUAL") and not (has_files or has_creds):
        at.error(
            "MG1035",
            f"mode {mode} needs credentialName or serverCertificate and privateKey",
            "mode",
        )
    if has_files and (tls.server_certificate is None or tls.private_key is None):
        at.error("MG1035", "serverCertificate and privateKey go together", "serverCertificate")
    if mode == "ISTIO_MUTUAL" and (has_files or has_creds or tls.ca_certificates):
        at.error(
            "MG1035", "mode ISTIO_MUTUAL uses mesh certificates: set no certificate fields", "mode"
        )


# --- VirtualService --------------------------------------------------------------------


@rule(net.VirtualService)
def _virtual_service(vs: net.VirtualService, findings: Findings) -> None:
    out = findings.at("spec")
    spec = vs.spec
    mesh_bound = "mesh" in spec.effective_gateways
    if not spec.hosts:
        if spec.gateways or spec.tls or spec.tcp:
            out.error(
                "MG1010",
                "a VirtualService needs hosts (without hosts it is a delegate: no gateways, "
                "tls or tcp)",
                "hosts",
            )
        else:
            out.warn(
                "MG1010", "no hosts: usable only as a delegate of another VirtualService", "hosts"
            )
    for i, host in enumerate(spec.hosts or []):
        if host == "*" and mesh_bound:
            out.error("MG1002", '"*" is not allowed for a VirtualService bound to mesh', "hosts", i)
        else:
            out.check("MG1001", hostname_problem(host, allow_star=True), "hosts", i)
    _gateways(out.at("gateways"), spec.gateways)
    for i, http in enumerate(spec.http or []):
        _http_route(out.at("http", i), http)
    for i, tls in enumerate(spec.tls or []):
        at = out.at("tls", i)
        if not tls.match:
            at.error("MG1031", "a TLS route needs a match with sniHosts", "match")
        for j, m in enumerate(tls.match):
            if not m.sni_hosts:
                at.error("MG1031", "sniHosts must not be empty", "match", j, "sniHosts")
            for k, host in enumerate(m.sni_hosts):
                at.check(
                    "MG1001", hostname_problem(host, allow_star=True), "match", j, "sniHosts", k
                )
            _l4_match(at.at("match", j), m.port, m.destination_subnets, m.gateways)
        _route_destinations(at, tls.route, "a TLS route")
    for i, tcp in enumerate(spec.tcp or []):
        at = out.at("tcp", i)
        for j, l4 in enumerate(tcp.match or []):
            _l4_match(at.at("match", j), l4.port, l4.destination_subnets, l4.gateways)
        _route_destinations(at, tcp.route, "a TCP route")
    _export_to(out, spec.export_to)


def _l4_match(
    out: Findings, port: int | None, subnets: list[str] | None, gateways: list[str] | None
) -> None:
    if port is not None:
        out.check("MG1003", port_problem(port), "port")
    _addresses(out, subnets, "destinationSubnets")
    _gateways(out.at("gateways"), gateways)


def _route_destinations(
    out: Findings, routes: Sequence[net.RouteDestination] | None, what: str
) -> None:
    if not routes:
        out.error("MG1031", f"{what} needs at least one destination", "route")
        return
    for j, r in enumerate(routes):
        _destination(out.at("route", j, "destination"), r.destination)
    _weights(out.at("route"), routes)


def _http_route(out: Findings, http: net.HTTPRoute) -> None:
    actions = [
        name
        for name, value in (
            ("route", http.route),
            ("redirect", http.redirect),
            ("directResponse", http.direct_response),
            ("delegate", http.delegate),
        )
        if value
    ]
    if len(actions) != 1:
        what = ", ".join(actions) if actions else "none"
        out.error(
            "MG1021", f"set exactly one of route, redirect, directResponse, delegate (got {what})"
        )
    for j, m in enumerate(http.match or []):
        _http_match(out.at("match", j), m)
    for j, r in enumerate(http.route or []):
        _destination(out.at("route", j, "destination"), r.destination)
    _weights(out.at("route"), http.route or [])
    if http.redirect is not None and http.redirect.port is not None:
        out.check("MG1003", port_problem(http.redirect.port), "redirect", "port")
    if (
        http.rewrite is not None
        and http.rewrite.uri is not None
        and http.rewrite.uri_regex_rewrite is not None
    ):
        out.error("MG1038", "set uri or uriRegexRewrite, not both", "rewrite")
    if http.mirror is not None:
        _destination(out.at("mirror"), http.mirror)
    for j, mirror in enumerate(http.mirrors or []):
        _destination(out.at("mirrors", j, "destination"), mirror.destination)
        if mirror.percentage is not None:
            _percent(out, mirror.percentage.value, "mirrors", j, "percentage", "value")
    if http.mirror_percentage is not None:
        _percent(out, http.mirror_percentage.value, "mirrorPercentage", "value")
    fault = http.fault
    if fault is not None:
        for part, name in ((fault.delay, "delay"), (fault.abort, "abort")):
            if part is not None and part.percentage is not None:
                _percent(out, part.percentage.value, "fault", name, "percentage", "value")


def _http_match(out: Findings, m: net.HTTPMatchRequest) -> None:
    if all(getattr(m, f) is None for f in net.HTTPMatchRequest.model_fields):
        out.error("MG1029", "a match block must not be empty")
    for name in ("uri", "scheme", "method", "authority"):
        value = getattr(m, name)
        if value is not None and value.is_presence:
            out.error("MG1029", "set one of exact, prefix or regex", name)
    for field_name, wire in (("headers", "headers"), ("without_headers", "withoutHeaders")):
        for header in getattr(m, field_name) or {}:
            if header != header.lower():
                out.error("MG1032", f"header name {header!r} must be lowercase", wire, header)
    if m.port is not None:
        out.check("MG1003", port_problem(m.port), "port")
    _gateways(out.at("gateways"), m.gateways)


# --- DestinationRule -------------------------------------------------------------------


@rule(net.DestinationRule)
def _destination_rule(dr: net.DestinationRule, findings: Findings) -> None:
    out = findings.at("spec")
    out.check("MG1001", hostname_problem(dr.spec.host, allow_star=True), "host")
    subsets = dr.spec.subsets or []
    _ports_unique(out.at("subsets"), subsets, "name", "MG1020", "subset name", "name")
    for i, subset in enumerate(subsets):
        if subset.traffic_policy is not None:
            _traffic_policy(out.at("subsets", i, "trafficPolicy"), subset.traffic_policy)
    if dr.spec.traffic_policy is not None:
        _traffic_policy(out.at("trafficPolicy"), dr.spec.traffic_policy)
    _export_to(out, dr.spec.export_to)


def _traffic_policy(out: Findings, policy: net.TrafficPolicy | net.PortTrafficPolicy) -> None:
    if policy.tls is not None:
        _client_tls(out.at("tls"), policy.tls)
    od = policy.outlier_detection
    if od is not None:
        _percent(out, od.max_ejection_percent, "outlierDetection", "maxEjectionPercent")
        _percent(out, od.min_health_percent, "outlierDetection", "minHealthPercent")
    if isinstance(policy, net.TrafficPolicy):
        for i, pls in enumerate(policy.port_level_settings or []):
            at = out.at("portLevelSettings", i)
            if pls.port is None or pls.port.number is None:
                at.error("MG1003", "port-level settings need port.number", "port")
            else:
                at.check("MG1003", port_problem(pls.port.number), "port", "number")
            _traffic_policy(at, pls)
        if policy.tunnel is not None:
            out.check("MG1003", port_problem(policy.tunnel.target_port), "tunnel", "targetPort")


def _client_tls(out: Findings, tls: net.ClientTLSSettings) -> None:
    mode = tls.effective_mode
    has_files = tls.client_certificate is not None or tls.private_key is not None
    if (
        mode == "MUTUAL"
        and not tls.credential_name
        and not (tls.client_certificate and tls.private_key)
    ):
        out.error(
            "MG1035", "mode MUTUAL needs credentialName or clientCertificate and privateKey", "mode"
        )
    if mode == "ISTIO_MUTUAL" and (has_files or tls.credential_name or tls.ca_certificates):
        out.error(
            "MG1035", "mode ISTIO_MUTUAL uses mesh certificates: set no certificate fields", "mode"
        )


# --- Sidecar ---------------------------------------------------------------------------


@rule(net.Sidecar)
def _sidecar(sc: net.Sidecar, findings: Findings) -> None:
    out = findings.at("spec")
    for i, egress in enumerate(sc.spec.egress or []):
        at = out.at("egress", i)
        if not egress.hosts:
            at.error("MG1023", "egress listener needs hosts (namespace/dnsName)", "hosts")
        for j, host in enumerate(egress.hosts):
            reason = namespaced_host_problem(
                host, require_namespace=True, extra_namespaces=("*", ".", "~")
            )
            at.check("MG1023", reason, "hosts", j)
        if egress.port is not None and egress.port.number is not None:
            at.check("MG1003", port_problem(egress.port.number), "port", "number")
    for i, ingress in enumerate(sc.spec.ingress or []):
        at = out.at("ingress", i)
        if ingress.port.number is None:
            at.error("MG1003", "ingress listener needs port.number", "port", "number")
        else:
            at.check("MG1003", port_problem(ingress.port.number), "port", "number")
    otp = sc.spec.outbound_traffic_policy
    if otp is not None and otp.egress_proxy is not None:
        if otp.mode != "ALLOW_ANY":
            out.error(
                "MG1042", "egressProxy needs mode ALLOW_ANY", "outboundTrafficPolicy", "egressProxy"
            )
        _destination(out.at("outboundTrafficPolicy", "egressProxy"), otp.egress_proxy)


# --- AuthorizationPolicy ---------------------------------------------------------------


@rule(sec.AuthorizationPolicy)
def _authorization_policy(ap: sec.AuthorizationPolicy, findings: Findings) -> None:
    out = findings.at("spec")
    spec = ap.spec
    if spec.selector is not None and (spec.target_ref is not None or spec.target_refs):
        out.error("MG1019", "set either selector or targetRef(s), not both", "selector")
    if spec.target_ref is not None and spec.target_refs:
        out.error("MG1019", "set either targetRef or targetRefs, not both", "targetRef")
    if spec.effective_action == "CUSTOM" and spec.provider is None:
        out.error("MG1036", "action CUSTOM needs a provider", "provider")
    if spec.provider is not None and spec.effective_action != "CUSTOM":
        out.error("MG1036", "provider is only used with action CUSTOM", "provider")
    for i, r in enumerate(spec.rules or []):
        at = out.at("rules", i)
        for j, f in enumerate(r.from_ or []):
            _source(at.at("from", j, "source"), f.source)
        for j, t in enumerate(r.to or []):
            _operation(at.at("to", j, "operation"), t.operation)
        for j, cond in enumerate(r.when or []):
            if not cond.values and not cond.not_values:
                at.error("MG1037", "a condition needs values or notValues", "when", j)


def _source(out: Findings, source: sec.Source | None) -> None:
    if source is None or not any(getattr(source, f) for f in sec.Source.model_fields):
        out.error("MG1037", "a source must set at least one field")
        return
    if (source.service_accounts or source.not_service_accounts) and (
        source.principals or source.not_principals or source.namespaces or source.not_namespaces
    ):
        out.error(
            "MG1025",
            "serviceAccounts cannot be combined with principals or namespaces",
            "serviceAccounts",
        )
    for name in ("ip_blocks", "not_ip_blocks", "remote_ip_blocks", "not_remote_ip_blocks"):
        wire = sec.Source.model_fields[name].alias or name
        _addresses(out, getattr(source, name), wire)


def _operation(out: Findings, op: sec.Operation | None) -> None:
    if op is None or not any(getattr(op, f) for f in sec.Operation.model_fields):
        out.error("MG1037", "an operation must set at least one field")
        return
    for name, wire in (("ports", "ports"), ("not_ports", "notPorts")):
        for i, port in enumerate(getattr(op, name) or []):
            if not port.isdigit():
                out.error("MG1003", f"port {port!r} is not a number", wire, i)
            else:
                out.check("MG1003", port_problem(int(port)), wire, i)


# --- Kubernetes ------------------------------------------------------------------------


@rule(kube.Namespace)
def _namespace(ns: kube.Namespace, out: Findings) -> None:
    if ns.metadata.name:
        out.check("MG1030", label_name_problem(ns.metadata.name), "metadata", "name")


@rule(kube.Service)
def _service(svc: kube.Service, findings: Findings) -> None:
    out = findings.at("spec", "ports")
    ports = svc.spec.ports or []
    for i, p in enumerate(ports):
        out.check("MG1003", port_problem(p.port), i, "port")
        if isinstance(p.target_port, int):
            out.check("MG1003", port_problem(p.target_port), i, "targetPort")
        elif isinstance(p.target_port, str):
            out.check("MG1040", port_name_problem(p.target_port), i, "targetPort")
        if p.node_port is not None:
            out.check("MG1003", port_problem(p.node_port), i, "nodePort")
        if len(ports) > 1 and not p.name:
            out.error("MG1040", "each port needs a name when a Service has several", i, "name")
    _ports_unique(out, ports, "name", "MG1016", "port name", "name")


def _pod_spec(out: Findings, spec: kube.PodSpec) -> None:
    if not spec.containers:
        out.error("MG1039", "a pod needs at least one container", "containers")
    counts = Counter(c.name for c in spec.containers)
    for i, c in enumerate(spec.containers):
        if counts[c.name] > 1:
            out.error("MG1039", f"duplicate container name {c.name!r}", "containers", i, "name")
        for j, port in enumerate(c.ports or []):
            out.check(
                "MG1003",
                port_problem(port.container_port),
                "containers",
                i,
                "ports",
                j,
                "containerPort",
            )


@rule(kube.Pod)
def _pod(pod: kube.Pod, out: Findings) -> None:
    _pod_spec(out.at("spec"), pod.spec)


@rule(kube.Deployment)
def _deployment(dep: kube.Deployment, findings: Findings) -> None:
    out = findings.at("spec")
    selector = dep.spec.selector
    if not selector.match_labels and not selector.match_expressions:
        out.error("MG1011", "selector must not be empty", "selector")
    elif not selector.matches(dep.spec.template.labels):
        out.error(
            "MG1011", "selector does not match template labels", "template", "metadata", "labels"
        )
    _pod_spec(out.at("template", "spec"), dep.spec.template.spec)


# --- meshgate and Alibaba Cloud --------------------------------------------------------


@rule(mg.MeshConfig)
def _mesh_config(mc: mg.MeshConfig, out: Findings) -> None:
    if mc.metadata.name != mg.MESH_CONFIG_NAME:
        out.error(
            "MG1012", f"the MeshConfig must be named {mg.MESH_CONFIG_NAME!r}", "metadata", "name"
        )
    if mc.spec.root_namespace is not None:
        out.check("MG1030", label_name_problem(mc.spec.root_namespace), "spec", "rootNamespace")
    if mc.spec.trust_domain is not None:
        out.check(
            "MG1001", hostname_problem(mc.spec.trust_domain, allow_ip=False), "spec", "trustDomain"
        )


@rule(ali.IstioGateway)
def _istio_gateway(gw: ali.IstioGateway, out: Findings) -> None:
    if gw.namespace != "istio-system":
        out.warn(
            "MG1028",
            "an IstioGateway is expected in namespace istio-system",
            "metadata",
            "namespace",
        )
    ports = gw.spec.ports or []
    at = out.at("spec", "ports")
    for i, p in enumerate(ports):
        at.check("MG1003", port_problem(p.port), i, "port")
        if isinstance(p.target_port, int):
            at.check("MG1003", port_problem(p.target_port), i, "targetPort")
    _ports_unique(at, ports, "name", "MG1016", "port name", "name")
    _ports_unique(at, ports, "port", "MG1016", "port", "port")


@rule(ali.ASMEgressTrafficPolicy)
def _egress_policy(policy: ali.ASMEgressTrafficPolicy, findings: Findings) -> None:
    if policy.namespace != "istio-egress":
        findings.warn(
            "MG1027",
            "an ASMEgressTrafficPolicy is expected in namespace istio-egress",
            "metadata",
            "namespace",
        )
    out = findings.at("spec")
    if policy.spec.by_egress_gateway.port is not None:
        out.check(
            "MG1003", port_problem(policy.spec.by_egress_gateway.port), "byEgressGateway", "port"
        )
    for i, egress_rule in enumerate(policy.spec.egress_rules):
        for j, src in enumerate(egress_rule.from_):
            out.check(
                "MG1030",
                label_name_problem(src.namespace),
                "egressRules",
                i,
                "from",
                j,
                "namespace",
            )
        for j, to in enumerate(egress_rule.to):
            at = out.at("egressRules", i, "to", j)
            for k, host in enumerate(to.hosts):
                if host == "*":
                    at.error("MG1002", '"*" alone is not a valid host', "hosts", k)
                else:
                    at.check("MG1001", hostname_problem(host), "hosts", k)
            at.check("MG1003", port_problem(to.port.number), "port", "number")
            _protocol(at, to.port.protocol, GATEWAY_PROTOCOLS, "port", "protocol")
            if to.by_egress_gateway is not None and to.by_egress_gateway.port is not None:
                at.check(
                    "MG1003", port_problem(to.by_egress_gateway.port), "byEgressGateway", "port"
                )
            if to.https_upgrade is not None and to.https_upgrade.port is not None:
                at.check("MG1003", port_problem(to.https_upgrade.port), "httpsUpgrade", "port")
