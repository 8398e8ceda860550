"""Gateway servers that carry TCP: plain TCP servers and TLS servers that end TLS themselves
(Istio's buildGatewayTCPBasedFilterChains / buildGatewayNetworkFiltersFromTCPRoutes).

Rules of this module:
- A server's destination comes from the VirtualServices bound to its gateway (exported to
  the gateway's namespace) whose hosts meet the server's hosts: the first such
  VirtualService with a ``tcp`` route that applies wins, and in it the first route that
  applies. A route applies when it has no ``match``, or one match whose ``port`` is unset or
  the server's port and whose ``gateways`` are unset or name the gateway (as Istio's gateway
  code, ``sourceLabels`` and ``destinationSubnets`` are not looked at). The route's
  destinations become one tcp_proxy: ``outbound|PORT|SUBSET|HOST`` (PORT the destination's,
  else the server's), weighted clusters when there are several.
- A plain TCP server (TCP, MONGO, MYSQL, REDIS..., no terminating ``tls``) owns the whole
  port: one chain matching everything. Only one plain server per port counts (Envoy takes
  one match-all chain): the first in order that has a route. With no route at all the chain
  refuses every connection and logs why (``translate.refusals``), instead of a silent reset.
- A TLS (or TCP) server whose ``tls.mode`` terminates (SIMPLE, MUTUAL, OPTIONAL_MUTUAL,
  ISTIO_MUTUAL) ends TLS with the server's settings (``translate.tls``) and then routes the
  decrypted bytes by its ``tcp`` routes, never its ``tls`` routes: one chain per server on
  its hosts as SNI (none for ``*``), built by ``translate.gateway`` among the port's other
  TLS chains. With no route the server gets no chain: its SNI falls to the port's
  unknown-SNI chain, which closes the connection and logs why.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from envoy.config.listener.v3 import listener_components_pb2 as lc

from meshgate.model import hosts
from meshgate.model.fields import get, get_int, get_list, get_str
from meshgate.model.snapshot import Snapshot, qualify_gateway
from meshgate.translate import filters, naming, refusals
from meshgate.translate.outbound_l4 import Target, destinations

if TYPE_CHECKING:
    from meshgate.translate.gateway import BoundServer


def _applies(match: Any, server: BoundServer, vs_ns: str) -> bool:
    """Istio's l4SingleMatch: the port and the gateways, nothing else."""
    port = get_int(match, "port")
    if port and port != server.port:
        return False
    gws = [qualify_gateway(str(g), vs_ns) for g in get_list(match, "gateways")]
    return not gws or server.gateway in gws


def _meets(vs: Any, server: BoundServer) -> bool:
    """Whether some host of the VirtualService is admitted by the server's hosts."""
    ns = get_str(get(vs, "metadata"), "namespace") or "default"
    for raw in get_list(get(vs, "spec"), "hosts"):
        host = hosts.expand_short_name(str(raw), ns)
        if any(pattern.admits(ns, host) for pattern in server.hosts):
            return True
    return False


def _exported_to(vs: Any, namespace: str) -> bool:
    export = [str(e) for e in get_list(get(vs, "spec"), "export_to")]
    if not export or "*" in export:
        return True
    own = get_str(get(vs, "metadata"), "namespace") or "default"
    return namespace in export or ("." in export and own == namespace)


def tcp_target(snapshot: Snapshot, server: BoundServer) -> Target | None:
    """Where the server's TCP bytes go, by the rules above; None when no route applies."""
    gw_ns, gw_name = server.gateway.split("/", 1)
    for vs in snapshot.virtual_services_for_gateway(gw_ns, gw_name):
        if not _exported_to(vs, server.gateway_namespace) or not _meets(vs, server):
            continue
        vs_ns = get_str(get(vs, "metadata"), "namespace") or "default"
        for route in get_list(get(vs, "spec"), "tcp"):
            matches = get_list(route, "match")
            if matches and not any(_applies(m, server, vs_ns) for m in matches):
                continue
            target = destinations(route, vs_ns, server.port)
            if target is not None:
                return target
    return None


def _proxy(target: Target) -> Any:
    stat = target if isinstance(target, str) else target[0][0]
    return filters.tcp_proxy(stat, target, access_log=True)


def plain_chain(snapshot: Snapshot, port: int, servers: list[BoundServer]) -> Any:
    """The one chain of a plain TCP port: the first server with a route, else a refusal."""
    for server in servers:
        target = tcp_target(snapshot, server)
        if target is not None:
            return lc.FilterChain(name=_chain_name(server), filters=[_proxy(target)])
    blackhole = naming.BLACKHOLE_CLUSTER
    reason = refusals.no_gateway_route_tcp_port(port)
    return lc.FilterChain(
        name="no-tcp-route",
        filters=[filters.tcp_proxy(blackhole, blackhole, access_log=True, refusal=reason)],
    )


def terminating_chain(
    snapshot: Snapshot, server: BoundServer, server_names: list[str], transport_socket: Any
) -> Any | None:
    """A TLS-terminating server's chain (SNI ``server_names``, TLS ended by
    ``transport_socket``), routed by its ``tcp`` routes; None when none applies."""
    target = tcp_target(snapshot, server)
    if target is None:
        return None
    return lc.FilterChain(
        name=_chain_name(server),
        filter_chain_match=lc.FilterChainMatch(server_names=server_names),
        transport_socket=transport_socket,
        filters=[_proxy(target)],
    )


def _chain_name(server: BoundServer) -> str:
    """``tcp.10001.tls-10001.egress-p.istio-egress``: the server's port, port name, gateway."""
    gw_ns, gw_name = server.gateway.split("/", 1)
    return f"tcp.{server.port}.{server.port_name}.{gw_name}.{gw_ns}"
