"""VirtualService rules (Istio's ValidateVirtualService, TLS and TCP routes).

Rules of this module:
- Without hosts a VirtualService is a delegate: it may have no gateways, tls or tcp
  routes (it is still valid: a root VirtualService delegates to it).
- Hosts are domains (a leading wildcard label allowed) or IPs; ``*`` alone is refused
  for a VirtualService bound to the mesh; no two hosts may overlap (``*.a.com`` and
  ``b.a.com``). Bound to gateways only, an SNI host may be ``outbound_.PORT_._.HOST``.
- At least one of http, tls or tcp routes. A TLS route matches on SNI hosts, each a
  subset of the VirtualService's hosts; TLS and TCP routes have destinations.
- JWT claim header matches (``@request.auth.claims.*``) work only on gateways.
"""

from __future__ import annotations

from meshgate.api.kinds import istio_networking as net
from meshgate.validation import common as c
from meshgate.validation import shared
from meshgate.validation.findings import Findings, rule
from meshgate.validation.networking_http import http_route, route_destinations


@rule(net.VirtualService)
def _virtual_service(vs: net.VirtualService, findings: Findings) -> None:
    out = findings.at("spec")
    spec = vs.spec
    hosts = spec.hosts or []
    if not hosts:
        for value, wire in ((spec.gateways, "gateways"), (spec.tls, "tls"), (spec.tcp, "tcp")):
            if value:
                out.error(
                    "MG1010", f"a delegate VirtualService (no hosts) must have no {wire}", wire
                )
        if not (spec.gateways or spec.tls or spec.tcp):
            out.warn(
                "MG1010", "no hosts: usable only as a delegate of another VirtualService", "hosts"
            )
    gateways = spec.gateways or []
    to_gateway = bool(gateways) and "mesh" not in gateways
    if spec.gateways:
        shared.gateway_names(out.at("gateways"), spec.gateways)
    if not to_gateway:
        _jwt_claims(out, spec)
    sni = any(m.sni_hosts for t in spec.tls or [] for m in t.match)
    all_valid = True
    for i, host in enumerate(hosts):
        reason = (
            c.gateway_sni_domain_problem(host)
            if to_gateway and sni
            else c.wildcard_domain_problem(host)
        )
        if reason is not None:
            if not c.is_ip(host):
                all_valid = False
                out.error("MG1001", reason, "hosts", i)
        elif host == "*" and not to_gateway:
            all_valid = False
            out.error(
                "MG1002", '"*" is not allowed for a VirtualService bound to the mesh', "hosts", i
            )
    if all_valid:
        for i, a in enumerate(hosts):
            for b in hosts[i + 1 :]:
                if c.host_matches(a, b):
                    out.error("MG1056", f"overlapping hosts: {a} & {b}", "hosts", i)
    if not (spec.http or spec.tcp or spec.tls):
        out.error("MG1057", "a VirtualService needs http, tcp or tls routes", "http")
    for i, http in enumerate(spec.http or []):
        http_route(out.at("http", i), http, in_delegate=not hosts)
    for i, tls in enumerate(spec.tls or []):
        # Istio checks SNI hosts as gateway-bound unless "mesh" is named, even with no
        # gateways at all.
        _tls_route(out.at("tls", i), tls, hosts, "mesh" not in (spec.gateways or []))
    for i, tcp in enumerate(spec.tcp or []):
        at = out.at("tcp", i)
        for j, l4 in enumerate(tcp.match or []):
            _l4_match(
                at.at("match", j), l4.port, l4.destination_subnets, l4.source_labels, l4.gateways
            )
        if not tcp.route:
            at.error("MG1031", "a TCP route needs destinations", "route")
        route_destinations(at.at("route"), tcp.route or [])
    shared.export_to(out, vs.namespace, spec.export_to)


def _jwt_claims(out: Findings, spec: net.VirtualServiceSpec) -> None:
    for i, http in enumerate(spec.http or []):
        for j, m in enumerate(http.match or []):
            for wire, headers in (("headers", m.headers), ("withoutHeaders", m.without_headers)):
                for name in headers or {}:
                    if c.is_jwt_claim_header(name):
                        out.error(
                            "MG1067",
                            f"JWT claim based routing ({name}) is only supported on gateways",
                            "http",
                            i,
                            "match",
                            j,
                            wire,
                            name,
                        )


def _tls_route(out: Findings, tls: net.TLSRoute, hosts: list[str], to_gateway: bool) -> None:
    if not tls.match:
        out.error("MG1031", "a TLS route needs at least one match", "match")
    for j, m in enumerate(tls.match):
        at = out.at("match", j)
        if not m.sni_hosts:
            at.error("MG1031", "a TLS match needs at least one SNI host", "sniHosts")
        for k, sni in enumerate(m.sni_hosts):
            reason = (
                c.gateway_sni_domain_problem(sni) if to_gateway else c.wildcard_domain_problem(sni)
            )
            if reason is not None:
                if c.is_ip(sni):
                    at.warn(
                        "MG1058", f"an IP as SNI ({sni}) goes against the SNI spec", "sniHosts", k
                    )
                else:
                    at.error("MG1001", reason, "sniHosts", k)
            elif not any(c.host_subset_of(sni, h) for h in hosts):
                at.error(
                    "MG1058",
                    f"SNI host {sni!r} is not a subset of any VirtualService host",
                    "sniHosts",
                    k,
                )
        _l4_match(at, m.port, m.destination_subnets, m.source_labels, m.gateways)
    if not tls.route:
        out.error("MG1031", "a TLS route needs destinations", "route")
    route_destinations(out.at("route"), tls.route or [])


def _l4_match(
    out: Findings,
    port: int | None,
    subnets: list[str] | None,
    source_labels: dict[str, str] | None,
    gateways: list[str] | None,
) -> None:
    shared.addresses(out, subnets, "destinationSubnets")
    if port:
        out.check("MG1003", c.port_problem(port), "port")
    shared.labels(out, source_labels, "sourceLabels")
    shared.gateway_names(out.at("gateways"), gateways)
