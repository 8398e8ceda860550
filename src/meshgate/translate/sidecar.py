"""Sidecar outbound listeners and route configurations (egress-semantics §3.1-§3.2).

Rules of this module:
- ``virtualOutbound`` on 0.0.0.0:15001 receives every captured connection and hands it to
  the listener for its original destination (``use_original_dst``). Its own chains: port
  15001 itself -> BlackHoleCluster (no loops); anything else -> PassthroughCluster under
  ALLOW_ANY, BlackHoleCluster under REGISTRY_ONLY.
- HTTP ports of visible services get ``0.0.0.0_<port>`` (``bind_to_port: false``) with an
  HCM on RDS route ``"<port>"``; its catch-all vhost is ``allow_any`` or ``block_all``.
- TCP, TLS and HTTPS ports follow Istio's rule (``translate.outbound_l4``): a listener
  ``<vip>_<port>`` per service address, matched by destination address with no SNI needed;
  only services without addresses share ``0.0.0.0_<port>`` (TLS by SNI).
- A service without an HTTP port ``<port>`` still gets a virtual host in route ``"<port>"``
  when its mesh VirtualService has routes for that port (Istio builds VirtualService
  virtual hosts per listener port). A host's routes come from the first of its mesh
  VirtualServices with HTTP routes for the port (``model.meshvs``).
- Domains are unique within one route configuration: the first (sorted) service keeps a
  contested domain.
- ExternalName Services (aliases) get no listener and no virtual host of their own: the
  names of a service's aliases join its virtual host's domains (Istio 1.21+'s
  ``generateVirtualHostDomains``), so ``Host: alias`` reaches the concrete service. A
  headless Kubernetes Service's domains also match as ``*.<domain>`` (pod DNS names under
  it), as Istio's do.
- Every route configuration adds Istio's peer metadata headers to the requests it sends
  (``translate.peer_metadata``).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.config.listener.v3 import listener_components_pb2 as lc
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2

from meshgate.model import hosts, protocol
from meshgate.model.proxy import Proxy
from meshgate.model.services import Service, ServicePort
from meshgate.model.snapshot import MESH_GATEWAY, Snapshot
from meshgate.translate import filters, naming, peer_metadata, refusals
from meshgate.translate.outbound_l4 import WILDCARD, l4_listeners
from meshgate.translate.pb import boolean, socket_address, uint32
from meshgate.translate.routes import (
    RouteContext,
    catch_all_vhost,
    default_route,
    http_routes,
    single_port_lookup,
)


def _catch_all_cluster(mode: str) -> str:
    return naming.BLACKHOLE_CLUSTER if mode == "REGISTRY_ONLY" else naming.PASSTHROUGH_CLUSTER


def virtual_outbound(mode: str, access_log: bool, source: str = "") -> Any:
    """``source``: the sidecar's pod (``ns/name``), named in REGISTRY_ONLY's refusals."""
    blackhole = lc.FilterChain(
        name=naming.VIRTUAL_OUTBOUND_LISTENER + "-blackhole",
        filter_chain_match=lc.FilterChainMatch(
            destination_port=uint32(naming.VIRTUAL_OUTBOUND_PORT)
        ),
        filters=[
            filters.tcp_proxy(naming.BLACKHOLE_CLUSTER, naming.BLACKHOLE_CLUSTER, access_log=False)
        ],
    )
    catch_all = _catch_all_cluster(mode)
    refusal = refusals.registry_only_tcp(source) if mode == "REGISTRY_ONLY" else None
    passthrough = lc.FilterChain(
        name=naming.CATCH_ALL_TCP_CHAIN,
        filters=[filters.tcp_proxy(catch_all, catch_all, access_log=access_log, refusal=refusal)],
    )
    listener_filters = [filters.original_dst_filter()]
    if refusal is not None:
        # Everything that reaches this chain is refused: reading a TLS client's SNI first
        # costs nothing that works, and lets the log name the host, not just an address.
        listener_filters.append(filters.tls_inspector_filter())
    return listener_pb2.Listener(
        name=naming.VIRTUAL_OUTBOUND_LISTENER,
        address=socket_address(WILDCARD, naming.VIRTUAL_OUTBOUND_PORT),
        use_original_dst=boolean(True),
        listener_filters=listener_filters,
        filter_chains=[blackhole, passthrough],
        traffic_direction=base_pb2.OUTBOUND,
    )


def _unbound_listener(address: str, port: int, chains: list[Any]) -> Any:
    listener = listener_pb2.Listener(
        name=naming.listener_name(address, port),
        address=socket_address(address, port),
        bind_to_port=boolean(False),
        filter_chains=chains,
        traffic_direction=base_pb2.OUTBOUND,
    )
    return listener


def _domains(
    svc: Service, port: int, client_ns: str, aliases: tuple[str, ...] | list[str] = ()
) -> list[str]:
    names: list[str] = []
    for host in (svc.hostname, *aliases):
        names.extend((host, *hosts.short_forms(host, client_ns)))
    result = []
    for n in names:
        result.append(n)
        result.append(f"{n}:{port}")
    if svc.is_headless:
        result.extend([f"*.{d}" for d in result])
    for n in svc.addresses:
        result.append(n)
        result.append(f"{n}:{port}")
    return result


def http_route_config(
    snapshot: Snapshot, proxy: Proxy, port: int, services: list[Service], mode: str
) -> Any:
    single = single_port_lookup(snapshot, proxy)
    used: set[str] = set()
    vhosts = []
    for svc in sorted(services, key=lambda s: s.hostname):
        aliases = snapshot.aliases_for(proxy, svc.hostname)
        domains = [d for d in _domains(svc, port, proxy.namespace, aliases) if d not in used]
        if not domains:
            continue
        used.update(domains)
        ctx = RouteContext(MESH_GATEWAY, port, svc.hostname, snapshot.mesh, single)
        routes = _mesh_http_routes(snapshot, proxy, svc, ctx)
        if not routes:
            cluster = naming.cluster_name(port, "", svc.hostname)
            routes = [default_route(cluster, svc.hostname, port, snapshot.mesh)]
        vhosts.append(
            rc.VirtualHost(
                name=naming.vhost_name(svc.hostname, port),
                domains=domains,
                routes=routes,
                include_request_attempt_count=True,
            )
        )
    vhosts.extend(_vs_only_vhosts(snapshot, proxy, port, services, used, single))
    vhosts.append(catch_all_vhost(mode, f"{proxy.namespace}/{proxy.pod}"))
    return route_pb2.RouteConfiguration(
        name=naming.sidecar_route_name(port),
        virtual_hosts=vhosts,
        validate_clusters=boolean(False),
        ignore_port_in_host_matching=True,
        # Only meshgate's own refusals carry it (``translate.refusals``), never a server's.
        response_headers_to_remove=[refusals.REFUSED_HEADER],
        request_headers_to_add=peer_metadata.request_headers(proxy),
        # ...removed before the block_all route adds its own (global level first).
        most_specific_header_mutations_wins=True,
    )


def _mesh_http_routes(
    snapshot: Snapshot, proxy: Proxy, svc: Service, ctx: RouteContext
) -> list[Any]:
    """The routes of the first mesh VirtualService for the host with HTTP routes on the
    port (Istio's: one without builds no virtual host, so a ``tls``-only VirtualService for
    the host does not hide an ``http`` one)."""
    for vs in snapshot.mesh_http_virtual_services(svc.hostname, proxy.namespace):
        routes = http_routes(vs, ctx)
        if routes:
            return list(routes)
    return []


def _vs_only_vhosts(
    snapshot: Snapshot,
    proxy: Proxy,
    port: int,
    on_port: list[Service],
    used: set[str],
    single: Any,
) -> list[Any]:
    """Virtual hosts for services that have no HTTP port ``port`` but a mesh VirtualService
    with routes for it (Istio's buildSidecarVirtualHostsForVirtualService builds them for
    the listener's port): ``curl http://svc`` on port 80 follows a ``port: 80`` match even
    when the service itself listens on 443 only (Istio's egress TLS origination tasks)."""
    listed = {svc.hostname for svc in on_port}
    out = []
    for svc in sorted(snapshot.visible_services(proxy), key=lambda s: s.hostname):
        if svc.hostname in listed or svc.is_alias:
            continue
        ctx = RouteContext(MESH_GATEWAY, port, svc.hostname, snapshot.mesh, single)
        routes = _mesh_http_routes(snapshot, proxy, svc, ctx)
        domains = [d for d in _domains(svc, port, proxy.namespace) if d not in used]
        if not routes or not domains:
            continue
        used.update(domains)
        out.append(
            rc.VirtualHost(
                name=naming.vhost_name(svc.hostname, port),
                domains=domains,
                routes=routes,
                include_request_attempt_count=True,
            )
        )
    return out


def sidecar_resources(
    snapshot: Snapshot, proxy: Proxy, services: list[Service]
) -> tuple[list[Any], list[Any]]:
    """(listeners, route configurations) for a sidecar."""
    mode = snapshot.outbound_mode(proxy)
    access_log = bool(snapshot.mesh.access_log_file)
    http_ports: dict[int, list[Service]] = defaultdict(list)
    l4_ports: list[tuple[Service, ServicePort]] = []
    for svc in services:
        if svc.is_alias:
            continue
        for p in svc.ports:
            if protocol.is_http(p.protocol):
                http_ports[p.number].append(svc)
            elif p.protocol != "UDP":
                l4_ports.append((svc, p))

    source = f"{proxy.namespace}/{proxy.pod}"
    listeners = [virtual_outbound(mode, access_log, source)]
    routes = []
    taken: set[str] = set()
    for port in sorted(http_ports):
        name = naming.listener_name(WILDCARD, port)
        taken.add(name)
        hcm = filters.http_connection_manager(
            f"outbound_{name}",
            naming.sidecar_route_name(port),
            gateway=False,
            access_log=access_log,
        )
        listeners.append(_unbound_listener(WILDCARD, port, [lc.FilterChain(filters=[hcm])]))
        routes.append(http_route_config(snapshot, proxy, port, http_ports[port], mode))

    listeners.extend(
        l4_listeners(snapshot, proxy, l4_ports, taken, _catch_all_cluster(mode), access_log)
    )
    return listeners, routes
