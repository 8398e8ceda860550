"""Gateway (router) listeners and route configurations (egress-semantics §2.4, §3.3).

Rules of this module:
- Only servers of Gateways whose selector matches the pod's labels (any namespace) count.
- A server port P binds 0.0.0.0 at the targetPort of the Kubernetes Service in the pod's
  namespace that selects the pod and exposes P; else at P itself. Listener ``0.0.0.0_<bind>``.
- HTTP servers share one route configuration ``http.<P>`` per server port. Its vhosts are
  ``host:P`` for the hosts of VirtualServices bound to the gateway, intersected with the
  server's hosts (the narrower of the two names); routes come from HTTPRoutes whose match
  gateways include the gateway and whose ``port`` is unset or P. Several VirtualServices on
  one host are merged in sorted order. No vhost at all -> ``blackhole:P`` with no routes,
  so Envoy answers 404 NR.
- TLS servers in PASSTHROUGH mode route by SNI from VirtualService ``tls`` routes; an SNI
  with no route gets the listener's default chain, which closes the connection and logs why
  (``translate.refusals``).
- HTTPS servers in SIMPLE/MUTUAL/OPTIONAL_MUTUAL mode terminate TLS (``translate.tls``:
  ``credentialName`` through SDS, else certificate files): one filter chain per server,
  matched by SNI on the server's hosts (none for ``*``), each with its own route
  configuration ``https.<P>.<port name>.<gateway>.<ns>`` (Istio's name) routing HTTP by Host
  as HTTP servers do. A host already claimed by an earlier server on the port is not claimed
  again (Envoy refuses two chains with one match). They may share a port with PASSTHROUGH
  servers of other hosts.
- HTTPS with ISTIO_MUTUAL ends mutual TLS with the mesh's identities (SDS `default` and
  `ROOTCA`), like SIMPLE/MUTUAL servers otherwise; the peer's SPIFFE identity is passed on in
  `x-forwarded-client-cert`.
- TCP servers (TCP, MONGO, MYSQL, REDIS...) and TLS servers that terminate TLS (SIMPLE,
  MUTUAL, ISTIO_MUTUAL...) route by VirtualService ``tcp`` routes (``translate.gateway_tcp``):
  a plain TCP port gets one chain for everything (a logged refusal when no route applies),
  a terminating TLS server a chain on its SNI hosts among the port's other TLS chains.
- Routers always write access logs; what their SSRF guard and their TLS handshakes refuse is
  logged with its reason (``translate.ssrf``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.config.listener.v3 import listener_components_pb2 as lc
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2

from meshgate.model import hosts, protocol
from meshgate.model.fields import get, get_int, get_list, get_str
from meshgate.model.proxy import Proxy
from meshgate.model.snapshot import Snapshot, gateway_key, qualify_gateway, vs_gateways
from meshgate.translate import filters, gateway_tcp, naming, refusals, ssrf
from meshgate.translate.pb import boolean, socket_address
from meshgate.translate.routes import RouteContext, http_routes, single_port_lookup
from meshgate.translate.tls import downstream_tls, terminates

WILDCARD = "0.0.0.0"


@dataclass(frozen=True)
class BoundServer:
    gateway: str  # ns/name
    gateway_namespace: str
    port: int
    protocol: str
    hosts: tuple[hosts.NamespacedHost, ...]
    tls_mode: str
    tls: Any = None
    port_name: str = ""

    @property
    def terminates_tls(self) -> bool:
        """An HTTPS server that ends TLS and routes HTTP."""
        return self.protocol == "HTTPS" and terminates(self.tls)

    @property
    def terminates_tcp(self) -> bool:
        """A TLS (or TCP) server that ends TLS and routes the bytes by ``tcp`` routes."""
        plain = not protocol.is_http(self.protocol) and self.protocol != "HTTPS"
        return plain and terminates(self.tls)


def bound_servers(snapshot: Snapshot, proxy: Proxy) -> list[BoundServer]:
    result = []
    for gw in snapshot.gateways_for(proxy):
        meta = get(gw, "metadata")
        ns = get_str(meta, "namespace") or "default"
        key = gateway_key(ns, get_str(meta, "name"))
        for server in get_list(get(gw, "spec"), "servers"):
            port = get(server, "port")
            result.append(
                BoundServer(
                    gateway=key,
                    gateway_namespace=ns,
                    port=get_int(port, "number"),
                    protocol=get_str(port, "protocol", "HTTP").upper(),
                    hosts=tuple(
                        hosts.parse_namespaced_host(str(h), ns) for h in get_list(server, "hosts")
                    ),
                    tls_mode=get_str(get(server, "tls"), "mode"),
                    tls=get(server, "tls"),
                    port_name=get_str(port, "name"),
                )
            )
    return result


def _vs_namespace(vs: Any) -> str:
    return get_str(get(vs, "metadata"), "namespace") or "default"


def _exported_to(vs: Any, namespace: str) -> bool:
    export = [str(e) for e in get_list(get(vs, "spec"), "export_to")]
    if not export or "*" in export:
        return True
    own = _vs_namespace(vs)
    return namespace in export or ("." in export and own == namespace)


def _intersections(vs: Any, server: BoundServer) -> list[str]:
    """VirtualService hosts admitted by the server, narrowed to the more specific name."""
    ns = _vs_namespace(vs)
    result = []
    for raw in get_list(get(vs, "spec"), "hosts"):
        host = hosts.expand_short_name(str(raw), ns)
        for pattern in server.hosts:
            if pattern.admits(ns, host):
                result.append(hosts.more_specific(host, pattern.host))
                break
    return result


def http_route_config(
    snapshot: Snapshot,
    proxy: Proxy,
    port: int,
    servers: list[BoundServer],
    name: str | None = None,
) -> Any:
    routes_by_host: dict[str, list[Any]] = defaultdict(list)
    single = single_port_lookup(snapshot, proxy)
    for server in servers:
        gw_ns, gw_name = server.gateway.split("/", 1)
        for vs in snapshot.virtual_services_for_gateway(gw_ns, gw_name):
            if not _exported_to(vs, server.gateway_namespace):
                continue
            for host in _intersections(vs, server):
                ctx = RouteContext(server.gateway, port, host, snapshot.mesh, single)
                routes = http_routes(vs, ctx)
                if routes or host not in routes_by_host:
                    routes_by_host[host].extend(routes)
    vhosts = [
        rc.VirtualHost(
            name=naming.vhost_name(host, port),
            domains=[host],
            routes=routes_by_host[host],
            include_request_attempt_count=True,
        )
        for host in sorted(routes_by_host, key=hosts.specificity_key)
        if routes_by_host[host]
    ]
    if not vhosts:
        vhosts = [rc.VirtualHost(name=naming.blackhole_vhost(port), domains=["*"])]
    return route_pb2.RouteConfiguration(
        name=name or naming.gateway_route_name(port),
        virtual_hosts=vhosts,
        validate_clusters=boolean(False),
        ignore_port_in_host_matching=True,
        # Only meshgate's own refusals carry it (``translate.refusals``), never a server's.
        response_headers_to_remove=[refusals.REFUSED_HEADER],
        # ...removed before the block_all route adds its own (global level first).
        most_specific_header_mutations_wins=True,
    )


def _tls_chains(snapshot: Snapshot, port: int, servers: list[BoundServer]) -> list[Any]:
    """PASSTHROUGH: one chain per SNI host routed by a bound VirtualService ``tls`` route."""
    chains: dict[str, Any] = {}
    for server in servers:
        gw_ns, gw_name = server.gateway.split("/", 1)
        for vs in snapshot.virtual_services_for_gateway(gw_ns, gw_name):
            if not _exported_to(vs, server.gateway_namespace):
                continue
            ns = _vs_namespace(vs)
            allowed = _intersections(vs, server)
            for route in get_list(get(vs, "spec"), "tls"):
                for m in get_list(route, "match"):
                    gws = [qualify_gateway(str(g), ns) for g in get_list(m, "gateways")]
                    if server.gateway not in (gws or vs_gateways(vs)):
                        continue
                    if get_int(m, "port") and get_int(m, "port") != port:
                        continue
                    for sni in get_list(m, "sni_hosts"):
                        sni = hosts.normalize(str(sni))
                        if sni in chains or not any(hosts.matches(sni, a) for a in allowed):
                            continue
                        targets = []
                        for d in get_list(route, "route"):
                            dest = get(d, "destination")
                            host = hosts.expand_short_name(get_str(dest, "host"), ns)
                            dport = get_int(get(dest, "port"), "number") or port
                            name = naming.cluster_name(dport, get_str(dest, "subset"), host)
                            targets.append((name, get_int(d, "weight") or 1))
                        if not targets:
                            continue
                        target: str | list[tuple[str, int]] = (
                            targets[0][0] if len(targets) == 1 else targets
                        )
                        stat = targets[0][0]
                        chains[sni] = lc.FilterChain(
                            name=sni,
                            filter_chain_match=lc.FilterChainMatch(server_names=[sni]),
                            filters=[filters.tcp_proxy(stat, target, access_log=True)],
                        )
    return [chains[k] for k in sorted(chains)]


def _sni_hosts(server: BoundServer) -> list[str]:
    """The SNI names a terminating server's chain matches; none (any SNI) for ``*``."""
    names = {h.host for h in server.hosts}
    return [] if "*" in names or not names else sorted(names)


def _https_chains(
    snapshot: Snapshot, proxy: Proxy, port: int, listener: str, servers: list[BoundServer]
) -> tuple[list[Any], list[Any], set[str]]:
    """(chains, route configurations, SNI names claimed) of the TLS-terminating servers, in
    order: HTTPS ones route HTTP, TLS ones their ``tcp`` routes (``translate.gateway_tcp``)."""
    chains = []
    by_route: dict[str, list[BoundServer]] = defaultdict(list)
    claimed: set[str] = set()
    catch_all = False
    for server in servers:
        wanted = _sni_hosts(server)
        snis = [n for n in wanted if n not in claimed]
        if not wanted:
            if catch_all:
                continue
            catch_all = True
        elif not snis:
            continue
        if server.terminates_tcp:
            chain = gateway_tcp.terminating_chain(
                snapshot, server, snis, downstream_tls(server.tls)
            )
            if chain is None:
                if not wanted:
                    catch_all = False
                continue
            claimed.update(snis)
            chains.append(chain)
            continue
        claimed.update(snis)
        gw_ns, gw_name = server.gateway.split("/", 1)
        route = naming.gateway_https_route_name(port, server.port_name, gw_name, gw_ns)
        by_route[route].append(server)
        hcm = filters.http_connection_manager(
            f"outbound_{listener}", route, gateway=True, access_log=True
        )
        chains.append(
            lc.FilterChain(
                name=route,
                filter_chain_match=lc.FilterChainMatch(server_names=snis),
                transport_socket=downstream_tls(server.tls),
                filters=[hcm],
            )
        )
    routes = [
        http_route_config(snapshot, proxy, port, group, route)
        for route, group in sorted(by_route.items())
    ]
    return chains, routes, claimed


def _unknown_sni_chain() -> Any:
    """A TLS connection for a host no server routes: closed, and logged with the reason
    (Envoy would otherwise close it without a word)."""
    refusal = refusals.NO_GATEWAY_ROUTE_TCP
    blackhole = naming.BLACKHOLE_CLUSTER
    return lc.FilterChain(
        name="unknown-sni",
        filters=[filters.tcp_proxy(blackhole, blackhole, access_log=True, refusal=refusal)],
    )


def gateway_resources(snapshot: Snapshot, proxy: Proxy) -> tuple[list[Any], list[Any]]:
    """(listeners, route configurations) for a gateway pod."""
    by_port: dict[int, list[BoundServer]] = defaultdict(list)
    for server in bound_servers(snapshot, proxy):
        by_port[server.port].append(server)
    listeners = []
    routes = []
    for port in sorted(by_port):
        servers = by_port[port]
        bind = snapshot.service_target_port(proxy, port)
        name = naming.listener_name(WILDCARD, bind)
        first = servers[0]
        listener = listener_pb2.Listener(
            name=name,
            address=socket_address(WILDCARD, bind),
            traffic_direction=base_pb2.OUTBOUND,
        )
        if protocol.is_http(first.protocol) or (
            first.protocol == "HTTPS"
            and not first.terminates_tls
            and first.tls_mode not in ("", "PASSTHROUGH", "AUTO_PASSTHROUGH")
        ):
            # HTTP, and HTTPS servers with a TLS mode no gateway terminates.
            hcm = filters.http_connection_manager(
                f"outbound_{name}", naming.gateway_route_name(port), gateway=True, access_log=True
            )
            listener.filter_chains.append(lc.FilterChain(filters=[hcm]))
            routes.append(http_route_config(snapshot, proxy, port, servers))
        elif first.protocol == "HTTPS" or protocol.is_tls(first.protocol) or first.terminates_tcp:
            listener.listener_filters.append(filters.tls_inspector_filter())
            terminating = [s for s in servers if s.terminates_tls or s.terminates_tcp]
            chains, https_routes, claimed = _https_chains(snapshot, proxy, port, name, terminating)
            passthrough = [s for s in servers if not (s.terminates_tls or s.terminates_tcp)]
            for chain in _tls_chains(snapshot, port, passthrough):
                if chain.name not in claimed:
                    chains.append(chain)
            if not chains:
                continue
            listener.filter_chains.extend(chains)
            listener.default_filter_chain.CopyFrom(_unknown_sni_chain())
            routes.extend(https_routes)
        elif first.protocol == "UDP":
            continue  # no gateway listens for UDP (Istio's neither)
        else:
            # TCP, MONGO, MYSQL, REDIS...: the bytes go where the ``tcp`` routes say.
            listener.filter_chains.append(gateway_tcp.plain_chain(snapshot, port, servers))
        listeners.append(listener)
    ssrf.guard_gateway(listeners)
    return listeners, routes
