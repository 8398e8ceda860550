"""The walk: one request through the source sidecar, the gateway(s) it is sent to, and on
to the upstream, reading each proxy's ACKed configuration; then the verdict.

Rules:
- Hops in the order Envoy takes them: listener -> filter chain -> (HTTP) RBAC filters ->
  route configuration -> virtual host -> route -> cluster -> transport socket (mTLS, TLS
  origination) -> endpoint; an endpoint that is a mesh proxy (a gateway) is walked again
  with what the connection carries to it (mTLS identity, SNI).
- Verdicts and statuses follow the reference's cheat sheet (egress-semantics §3.7):
  ``block_all`` 502; RBAC 403; a gateway vhost/route missing 404; a missing cluster 503 NC;
  no endpoint 503 UH; a TCP/TLS connection to BlackHoleCluster or to no filter chain: reset.
  A connection the next proxy closes comes back to an HTTP client as 503 (the sidecar's
  upstream failed); to a TLS/TCP client as a reset.
- A route timeout is reported, not predicted: the trace cannot know how slow a server is,
  so an allowed request says "times out after Ns (504) if the upstream is slower".
- The enforced exit (MeshConfig ``egressEnforcement: GATEWAY_ONLY``) and a gateway's SSRF
  guard act on connections, after Envoy chose them: checked on the last hop's upstream.
- Pure: the mesh (other proxies' configs, DNS, which resource registers a host) comes in
  through ``Mesh``; nothing here does I/O.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from meshgate.model import ssrf
from meshgate.trace import rbac
from meshgate.trace.chains import Connection, by_name, pick_chain, pick_listener
from meshgate.trace.config import HCM, HTTP_RBAC, NET_RBAC, TCP_PROXY, UPSTREAM_TLS, ProxyView
from meshgate.trace.config import unpack as unpack_any
from meshgate.trace.matchers import pick_virtual_host, route_matches
from meshgate.trace.origin import parse_cluster, policy_origin, route_origin
from meshgate.trace.result import Hop, Origin, Request, Result, Source

POD_NETWORK = ipaddress.ip_network("10.34.0.0/16")
MAX_HOPS = 4  # proxies in a row (sidecar, gateways): more is a routing loop


@dataclass
class Mesh:
    """What the walk needs to know beyond one proxy's configuration."""

    # a mesh proxy listening at this address: (its label ns/pod, its ACKed config, router?)
    proxy_at: Callable[[str], tuple[str, ProxyView, bool] | None] = lambda ip: None
    # the ServiceEntry or Service that registers a host name
    host_origin: Callable[[str], Origin | None] = lambda host: None
    # what sets the source's outbound traffic policy (MeshConfig or a Sidecar)
    mode_origin: Origin = field(default_factory=lambda: Origin("MeshConfig", "", "mesh"))
    mode: str = "ALLOW_ANY"
    gateway_only: bool = False
    ssrf_guard: bool = True
    # DNS as the proxies see it (a STRICT_DNS cluster's endpoint is a name)
    resolve: Callable[[str], list[str]] = lambda name: []


class _Stop(Exception):
    """The walk ended before the upstream: the verdict is set."""


@dataclass
class _Leg:
    """One proxy's part: who runs it and what arrives there."""

    label: str
    view: ProxyView
    router: bool
    conn: Connection
    principal: str | None  # the peer's mTLS identity, None for plaintext
    peer_ip: str


class Walker:
    def __init__(self, mesh: Mesh, request: Request, source: Source) -> None:
        self.mesh = mesh
        self.req = request
        self.result = Result(request=request, source=source)

    # -- outcome helpers ---------------------------------------------------------------

    def hop(self, leg: _Leg, step: str, name: str, detail: str = "", origin: Any = None) -> None:
        self.result.hops.append(Hop(leg.label, step, name, detail, origin))

    def stop(
        self,
        verdict: str,
        status: int | str | None,
        reason: str,
        fix: str = "",
        origin: Origin | None = None,
    ) -> _Stop:
        r = self.result
        r.verdict, r.status, r.reason, r.fix, r.decided_by = verdict, status, reason, fix, origin
        return _Stop()

    def closed(self, leg: _Leg, reason: str, fix: str = "", origin: Origin | None = None) -> _Stop:
        """A connection closed at ``leg``: a reset for the client, or a 503 when an HTTP
        client's sidecar was the one whose upstream connection closed."""
        first = leg is self.first
        if self.req.protocol == "http" and not first:
            return self.stop(
                "reset", 503, reason + " (the client's sidecar answers 503)", fix, origin
            )
        return self.stop("reset", "reset", reason, fix, origin)

    # -- entry -------------------------------------------------------------------------

    def run(self, view: ProxyView, label: str) -> Result:
        src = self.result.source
        ip = self.req.ip or ""
        tls = self.req.protocol == "tls"
        conn = Connection(ip, self.req.port, self.req.sni, tls, ("http/1.1",) if tls else ())
        self.first = _Leg(label, view, False, conn, None, src.ip)
        with contextlib.suppress(_Stop):
            self.leg(self.first, depth=0)
        return self.result

    def leg(self, leg: _Leg, depth: int) -> None:
        if depth >= MAX_HOPS:
            raise self.stop("loop", 508, "the request goes round from proxy to proxy")
        conn = leg.conn
        listener = pick_listener(leg.view.listeners, conn.ip, conn.port)
        if listener is None and not leg.router:
            listener = by_name(leg.view.listeners, "virtualOutbound")
        if listener is None:
            raise self.closed(leg, f"{leg.label} has no listener on port {conn.port}")
        self.hop(leg, "listener", listener.name, f"destination {conn.ip}:{conn.port}")
        chain = pick_chain(listener, conn)
        if chain is None:
            what = f"SNI {conn.sni}" if conn.sni else "this connection"
            raise self.closed(
                leg, f"no filter chain of {listener.name} on {leg.label} takes {what}"
            )
        self.hop(leg, "filter chain", chain.name or "(unnamed)", _chain_match(chain))
        hcm = tcp = None
        for f in chain.filters:
            if f.name == "envoy.filters.network.rbac":
                self.network_rbac(leg, unpack_any(f.typed_config, NET_RBAC))
            hcm = hcm or unpack_any(f.typed_config, HCM)
            tcp = tcp or unpack_any(f.typed_config, TCP_PROXY)
        if hcm is not None:
            if self.req.protocol != "http" and not _terminates_tls(chain):
                raise self.closed(
                    leg,
                    f"{listener.name} on {leg.label} expects HTTP; "
                    f"it gets {self.req.protocol.upper()} bytes",
                )
            self.http(leg, hcm, depth)
        elif tcp is not None:
            cluster = tcp.cluster or _heaviest(tcp.weighted_clusters.clusters)
            self.cluster(leg, cluster, depth, None, catch_all=chain.name)
        else:
            raise self.closed(leg, f"filter chain {chain.name} on {leg.label} has no proxy filter")

    # -- HTTP --------------------------------------------------------------------------

    def http(self, leg: _Leg, hcm: Any, depth: int) -> None:
        headers = self.req.header_map()
        headers.update(
            {":method": self.req.method, ":authority": self.req.host_header, ":path": self.req.path}
        )
        for f in hcm.http_filters:
            if f.name == "envoy.filters.http.rbac":
                config = unpack_any(f.typed_config, HTTP_RBAC)
                if config is not None:
                    self.rbac_check(leg, config, headers, http=True)
        if hcm.HasField("route_config"):
            rc = hcm.route_config
        else:
            rc = leg.view.routes.get(hcm.rds.route_config_name)
            if rc is None:
                raise self.stop(
                    "no-route",
                    404,
                    f"{leg.label} has no route configuration {hcm.rds.route_config_name!r}",
                )
        vh = pick_virtual_host(
            rc.virtual_hosts, self.req.host_header, rc.ignore_port_in_host_matching
        )
        if vh is None:
            self.hop(leg, "route configuration", rc.name, "no virtual host matches")
            raise self.no_route(leg, rc.name)
        self.hop(leg, "virtual host", vh.name, f"in route configuration {rc.name}")
        route = next((r for r in vh.routes if route_matches(r.match, self.req.path, headers)), None)
        if route is None:
            raise self.no_route(leg, rc.name, vh.name)
        origin = route_origin(route)
        self.hop(leg, "route", route.name or "-", _route_match(route.match), origin)
        action = route.WhichOneof("action")
        if action == "direct_response":
            status = int(route.direct_response.status)
            if route.name == "block_all" or vh.name == "block_all":
                raise self.blocked(leg)
            raise self.stop(
                "direct-response",
                status,
                f"route {route.name or '-'} on {leg.label} answers {status} itself",
                origin=origin,
            )
        if action == "redirect":
            code = {0: 301, 1: 302, 2: 303, 3: 307, 4: 308}.get(route.redirect.response_code, 301)
            raise self.stop(
                "redirect",
                code,
                f"route {route.name or '-'} on {leg.label} redirects",
                origin=origin,
            )
        ra = route.route
        self.note_timeout(ra, origin, leg)
        cluster = ra.cluster or _heaviest(ra.weighted_clusters.clusters)
        if ra.WhichOneof("cluster_specifier") == "weighted_clusters":
            split = ", ".join(f"{c.name} {c.weight.value}" for c in ra.weighted_clusters.clusters)
            self.result.notes.append(f"traffic is split ({split}); the trace follows the heaviest")
        if cluster == "PassthroughCluster" and route.name == "allow_any":
            self.result.notes.append(
                f"{self.req.host} is not registered; {self.mesh.mode_origin.text()} is ALLOW_ANY, "
                "so the"
                "sidecar sends it to the address the app resolved"
            )
        self.cluster(leg, cluster, depth, origin)

    def note_timeout(self, ra: Any, origin: Origin | None, leg: _Leg) -> None:
        if not ra.HasField("timeout"):
            return
        seconds = ra.timeout.seconds + ra.timeout.nanos / 1e9
        if seconds <= 0:
            return
        if self.result.timeout is None or seconds < self.result.timeout["seconds"]:
            self.result.timeout = {
                "seconds": seconds,
                "status": 504,
                "proxy": leg.label,
                "origin": None if origin is None else origin.__dict__,
            }

    def rbac_check(self, leg: _Leg, config: Any, headers: dict[str, str], http: bool) -> None:
        peer = rbac.Peer(
            source_ip=leg.peer_ip,
            principal=leg.principal,
            headers=headers,
            destination_ip=leg.conn.ip,
            destination_port=leg.conn.port,
            sni=leg.conn.sni or "",
        )
        d = rbac.evaluate(config, peer)
        if d.action == "NONE":
            return
        name = d.policy or ("no ALLOW policy matched" if d.action == "ALLOW" else "-")
        origin = policy_origin(d.policy) if d.policy else None
        self.hop(leg, "rbac", name, f"{d.action} -> {'pass' if d.allowed else 'refused'}", origin)
        if d.unknown:
            self.result.notes.append(
                "RBAC attributes the trace cannot know before the request runs: "
                + ", ".join(d.unknown)
            )
        if d.allowed:
            return
        ident = f"spiffe://{leg.principal}" if leg.principal else "no mTLS identity"
        who = f"{ident}, address {leg.peer_ip}"
        if d.action == "DENY" and origin is not None:
            ap = f"{origin.namespace}/{origin.name}"
            reason = (
                f"denied by AuthorizationPolicy {ap} {origin.detail} on {leg.label} (peer {who})"
            )
            fix = (
                f"change or delete AuthorizationPolicy {ap} "
                f"(see `meshgate get authorizationpolicy -n {origin.namespace}`)"
            )
        else:
            reason = (
                f"denied on {leg.label}: AuthorizationPolicies with action ALLOW select it and "
                f"none matches this request (peer {who})"
            )
            fix = (
                "add a rule for this source to an ALLOW AuthorizationPolicy on that proxy "
                "(see `meshgate get authorizationpolicy -A`)"
            )
        if http:
            raise self.stop("denied", 403, reason, fix, origin)
        raise self.closed(leg, reason, fix, origin)

    def network_rbac(self, leg: _Leg, config: Any) -> None:
        if config is not None:
            self.rbac_check(leg, config, {}, http=False)

    def blocked(self, leg: _Leg) -> _Stop:
        o = self.mesh.mode_origin
        host = self.req.host
        return self.stop(
            "blocked",
            502,
            f"blocked: the outbound traffic policy ({o.text()}) is REGISTRY_ONLY and no "
            "ServiceEntry "
            f"registers {host} (route block_all on {leg.label} answers 502 Bad Gateway)",
            f"add a ServiceEntry for {host} port {self.req.port} (see `meshgate get se -A`), or "
            "set "
            "outboundTrafficPolicy.mode: ALLOW_ANY",
            o,
        )

    def no_route(self, leg: _Leg, rc: str, vh: str | None = None) -> _Stop:
        where = f"virtual host {vh}" if vh else f"route configuration {rc}"
        if leg.router:
            reason = (
                f"no route on the gateway {leg.label}: {where} has no route for Host "
                f"{self.req.host_header} "
                f"{self.req.path} (404 Not Found, NR)"
            )
            fix = (
                f"bind a VirtualService for {self.req.host} to the Gateway (its `gateways` and a "
                "route "
                f"matching gateway port), and list {self.req.host} in the Gateway's server hosts "
                "(see `meshgate get gw,vs -A`)"
            )
        else:
            reason = (
                f"no route on {leg.label}: {where} has no route for "
                f"{self.req.host_header}{self.req.path} (404 NR)"
            )
            fix = (
                f"check the VirtualService for {self.req.host}: no HTTP route matches this request"
            )
        return self.stop("no-route", 404, reason, fix)

    # -- clusters and endpoints ----------------------------------------------------------

    def cluster(
        self, leg: _Leg, name: str, depth: int, origin: Origin | None, catch_all: str = ""
    ) -> None:
        req = self.req
        if name == "BlackHoleCluster":
            self.hop(leg, "cluster", name, "no endpoints: the connection is closed")
            o = self.mesh.mode_origin
            if not leg.router and (
                catch_all in ("PassthroughFilterChain", "") or "catch" in catch_all.lower()
            ):
                raise self.stop(
                    "reset",
                    "reset",
                    f"reset: {req.host}:{req.port} matches no registered service and the outbound "
                    "traffic "
                    f"policy ({o.text()}) is REGISTRY_ONLY, so the sidecar {leg.label} closes the "
                    "connection (BlackHoleCluster, UH)",
                    _unregistered_fix(req),
                    o,
                )
            raise self.closed(
                leg, f"{leg.label} sends it to BlackHoleCluster and closes the connection"
            )
        cluster = leg.view.clusters.get(name)
        parsed = parse_cluster(name)
        host_origin = self.mesh.host_origin(parsed[3]) if parsed else None
        if cluster is None:
            self.hop(leg, "cluster", name, "not in the proxy's configuration", host_origin)
            if req.protocol == "http":
                raise self.stop(
                    "no-cluster",
                    503,
                    f"{leg.label} routes to cluster {name}, which it does not have (503 NC)",
                    "check the route's destination host, port and subset: a DestinationRule must "
                    "define the "
                    "subset, and a ServiceEntry or Service the host and port",
                    origin,
                )
            raise self.closed(leg, f"{leg.label} routes to cluster {name}, which it does not have")
        ctype = _cluster_type(cluster)
        self.hop(leg, "cluster", name, ctype, host_origin)
        if ctype == "ORIGINAL_DST":
            self.upstream(leg, leg.conn.ip, leg.conn.port, None, depth)
            return
        endpoints = self.endpoints(leg, cluster)
        if not endpoints:
            reason = f"cluster {name} on {leg.label} has no endpoints (503 UH)"
            if req.protocol == "http":
                raise self.stop(
                    "no-endpoint",
                    503,
                    reason,
                    "check the destination's endpoints or its DNS name",
                    host_origin,
                )
            raise self.closed(leg, reason)
        address, port, metadata = endpoints[0]
        tls = self.transport(leg, cluster, metadata)
        self.hop(leg, "endpoint", f"{address}:{port}", f"{len(endpoints)} endpoint(s)")
        self.upstream(leg, address, port, tls, depth, parsed[3] if parsed else None)

    def endpoints(self, leg: _Leg, cluster: Any) -> list[tuple[str, int, Any]]:
        cla = (
            leg.view.endpoints.get(cluster.name)
            if cluster.type == 3 or cluster.HasField("eds_cluster_config")
            else None
        )
        if cla is None:
            cla = cluster.load_assignment
        out = []
        for group in cla.endpoints:
            for lb in group.lb_endpoints:
                sock = lb.endpoint.address.socket_address
                out.append((sock.address, int(sock.port_value), lb.metadata))
        return out

    def transport(self, leg: _Leg, cluster: Any, metadata: Any) -> tuple[str, str | None] | None:
        """(mode, sni) of the upstream connection: ("mtls", sni), ("tls", sni) or None."""
        socket = None
        for m in cluster.transport_socket_matches:
            wanted = m.match.fields
            have = (
                metadata.filter_metadata["envoy.transport_socket_match"].fields
                if "envoy.transport_socket_match" in metadata.filter_metadata
                else {}
            )
            if all(k in have and have[k] == v for k, v in wanted.items()):
                socket = m.transport_socket
                self.hop(leg, "tls", m.name, "transport socket match")
                break
        if socket is None and cluster.HasField("transport_socket"):
            socket = cluster.transport_socket
        if socket is None or "tls" not in socket.name:
            return None
        ctx = unpack_any(socket.typed_config, UPSTREAM_TLS)
        if ctx is None:
            return None
        sds = [s.name for s in ctx.common_tls_context.tls_certificate_sds_secret_configs]
        mode = "mtls" if "default" in sds else "tls"
        self.hop(
            leg,
            "tls",
            "ISTIO_MUTUAL" if mode == "mtls" else "TLS origination",
            f"SNI {ctx.sni or '-'}",
        )
        return mode, ctx.sni or None

    def upstream(
        self,
        leg: _Leg,
        address: str,
        port: int,
        tls: tuple[str, str | None] | None,
        depth: int,
        host: str | None = None,
    ) -> None:
        nxt = self.mesh.proxy_at(address)
        if nxt is not None:
            label, view, router = nxt
            mtls = tls is not None and tls[0] == "mtls"
            sni = tls[1] if tls else (leg.conn.sni if self.req.protocol == "tls" else None)
            alpn = ("istio-http/1.1", "istio") if mtls else (("http/1.1",) if tls else ())
            conn = Connection(
                address, port, sni, tls is not None or self.req.protocol == "tls", alpn
            )
            src = self.result.source
            principal = src.principal if mtls and leg is self.first else None
            if mtls and leg is not self.first:
                principal = _principal_of(leg.label, src.trust_domain)
            self.leg(_Leg(label, view, router, conn, principal, leg_ip(leg, src)), depth + 1)
            return
        self.exit_checks(leg, address, port)
        self.result.upstream = f"{host or address}:{port}"
        self.hop(leg, "upstream", f"{address}:{port}", f"leaves the mesh from {leg.label}")
        why = "allowed"
        if self.result.timeout:
            t = self.result.timeout
            self.result.notes.append(
                f"times out after {t['seconds']:g}s (504 Gateway Timeout) if the upstream is "
                "slower "
                f"(timeout from {_origin_text(t['origin'])})"
            )
        raise self.stop(
            "allowed",
            None,
            f"{why}: {self.req.host}:{self.req.port} is reached at {address}:{port} from "
            f"{leg.label}; "
            "the client gets the upstream's own answer",
        )

    def exit_checks(self, leg: _Leg, address: str, port: int) -> None:
        ip = _address(address) or next(
            filter(None, map(_address, self.mesh.resolve(address))), None
        )
        if leg.router and self.mesh.ssrf_guard and ip is not None:
            guarded = ssrf.classify(str(ip))
            if guarded is not None:
                status: int | str = 503 if self.req.protocol == "http" else "reset"
                raise self.stop(
                    "refused",
                    status,
                    f"refused: the gateway {leg.label}'s SSRF guard does not let it connect to "
                    f"{address}:{port} ({guarded.what})",
                    "route the gateway to an external host, or allow that address explicitly "
                    "(see docs/security.md, SSRF guard)",
                    Origin("MeshConfig", "", "mesh", "gatewaySsrfGuard"),
                )
        if self.mesh.gateway_only and not leg.router and (ip is None or ip not in POD_NETWORK):
            status = 503 if self.req.protocol == "http" else "reset"
            raise self.stop(
                "refused",
                status,
                "refused at the node: MeshConfig egressEnforcement is GATEWAY_ONLY and "
                f"{leg.label} "
                f"connects to {address}:{port} directly, not through an egress gateway "
                "(unless a NetworkPolicy isolates the pod for egress and allows it)",
                f"route {self.req.host} through the egress gateway (Gateway + VirtualService), or "
                "allow "
                "it with a NetworkPolicy egress rule",
                Origin("MeshConfig", "", "mesh", "egressEnforcement"),
            )


def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def leg_ip(leg: _Leg, source: Source) -> str:
    """The peer address the next proxy sees: the sending proxy's pod address."""
    if leg.label == f"{source.namespace}/{source.pod}":
        return source.ip
    return leg.conn.ip


def _principal_of(label: str, trust_domain: str) -> str | None:
    return None  # a gateway's own identity is not known here; RBAC then sees none


def _origin_text(o: dict[str, str] | None) -> str:
    return "a route" if not o else f"{o['kind']} {o['namespace']}/{o['name']}"


def _heaviest(clusters: Any) -> str:
    best = max(clusters, key=lambda c: c.weight.value, default=None)
    return "" if best is None else str(best.name)


def _cluster_type(cluster: Any) -> str:
    if cluster.HasField("cluster_type"):
        return str(cluster.cluster_type.name)
    from envoy.config.cluster.v3.cluster_pb2 import Cluster

    return str(Cluster.DiscoveryType.Name(cluster.type))


def _terminates_tls(chain: Any) -> bool:
    return chain.HasField("transport_socket") and "tls" in chain.transport_socket.name


def _chain_match(chain: Any) -> str:
    m = chain.filter_chain_match
    parts = []
    if m.HasField("destination_port"):
        parts.append(f"port {m.destination_port.value}")
    if m.server_names:
        parts.append("SNI " + ",".join(m.server_names))
    if m.transport_protocol:
        parts.append(m.transport_protocol)
    if m.prefix_ranges:
        parts.append(
            "to " + ",".join(f"{r.address_prefix}/{r.prefix_len.value}" for r in m.prefix_ranges)
        )
    return "match " + " ".join(parts) if parts else "matches any connection"


def _route_match(match: Any) -> str:
    kind = match.WhichOneof("path_specifier")
    text = (
        f"{kind} {getattr(match, kind) if kind != 'safe_regex' else match.safe_regex.regex}"
        if kind
        else "any path"
    )
    if match.headers:
        text += " and headers " + ",".join(h.name for h in match.headers)
    if match.query_parameters:
        text += " and query " + ",".join(q.name for q in match.query_parameters)
    return text


def _unregistered_fix(req: Request) -> str:
    """What registers a TLS/TCP destination: an address is no host name, so its entry
    needs ``addresses`` (the sidecar then builds the ``<IP>_<port>`` listener it dials)."""
    protocol = "TLS" if req.protocol == "tls" else "TCP"
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(req.host)
        return (
            f"add a ServiceEntry with addresses: [{req.host}] for port {req.port} protocol "
            f"{protocol} (resolution STATIC, as `meshgate egress discover --emit yaml` writes; "
            "see `meshgate get se -A`)"
        )
    where = f"{req.host} port {req.port} protocol {protocol}"
    return f"add a ServiceEntry for {where} (see `meshgate get se -A`)"
