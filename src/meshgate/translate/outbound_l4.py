"""Sidecar outbound listeners for TCP, TLS and HTTPS service ports (Istio's listener rules).

Rules of this module:
- A service with addresses gets one listener per address and port, ``<vip>_<port>``
  (``bind_to_port: false``; ``virtualOutbound`` hands it the connections whose original
  destination is that address). A Kubernetes Service's cluster IP and a ServiceEntry's
  ``addresses`` are such addresses. Its chain needs no SNI: the destination address already
  names the service, so TLS to a cluster IP with any SNI, or none, reaches the service.
- A CIDR address cannot be a listener address: the service shares ``0.0.0.0_<port>`` with a
  destination ``prefix_ranges`` match instead (and, for TLS, its host name as SNI).
- A service without addresses shares ``0.0.0.0_<port>``: TLS by SNI (one chain per host,
  the names of its ExternalName aliases included), TCP by nothing at all, so the first
  service in sorted order owns the port.
- A headless Kubernetes Service has no address: as Istio, each of its endpoints gets a
  listener ``<endpoint ip>_<port>`` instead (not the proxy's own address), and a headless
  Service without endpoints gets none. ExternalName Services (aliases) get no listener.
- Mesh VirtualService routes pick the destination, from every mesh VirtualService for the
  host in Istio's order (``Snapshot.mesh_virtual_services``: an ``http`` VirtualService
  and a ``tls`` one for one host both count): on a VIP listener every matching ``tls``
  match becomes a chain on its ``sniHosts`` (empty = any SNI); on the shared listener each
  match with ``sniHosts`` becomes a chain on them too (as Istio's), and the host's own
  chain goes where the first match that covers the host says. ``tcp`` routes: the first
  applicable one wins. With no route, the destination is ``outbound|<port>||<host>``.
- Chains merge per listener; a chain whose match equals one already there is dropped (first
  wins, as Istio's mergeTCPFilterChains), and so are server names an earlier chain with
  otherwise equal criteria already matches. A listener without a match-all chain gets the
  catch-all chain (BlackHole under REGISTRY_ONLY, Passthrough under ALLOW_ANY), and a
  tls_inspector only when some chain matches SNI.
- A port already taken by an HTTP listener ``0.0.0.0_<port>`` keeps it (no sniffing).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from envoy.config.core.v3 import address_pb2, base_pb2
from envoy.config.listener.v3 import listener_components_pb2 as lc
from envoy.config.listener.v3 import listener_pb2

from meshgate.model import hosts, protocol
from meshgate.model.fields import get, get_int, get_list, get_str
from meshgate.model.proxy import Proxy
from meshgate.model.services import Service, ServicePort
from meshgate.model.snapshot import MESH_GATEWAY, Snapshot, qualify_gateway, vs_gateways
from meshgate.translate import filters, naming, refusals
from meshgate.translate.pb import boolean, socket_address, uint32

WILDCARD = "0.0.0.0"

Target = str | list[tuple[str, int]]


@dataclass(frozen=True)
class L4Route:
    """One mesh route for a TLS/TCP port: the SNI names it matches (empty = any) and where
    it goes."""

    sni_hosts: tuple[str, ...]
    target: Target


@dataclass
class _Entry:
    address: str
    port: int
    chains: list[Any] = field(default_factory=list)
    matches: set[bytes] = field(default_factory=set)
    names: dict[bytes, set[str]] = field(default_factory=dict)

    def add(self, chain: Any) -> None:
        match = chain.filter_chain_match
        key = match.SerializeToString(deterministic=True)
        if key in self.matches:
            return
        if match.server_names:
            # A server name already matched (under the same other criteria) stays with its
            # first chain: Envoy refuses one name in two chains that are otherwise equal.
            rest = lc.FilterChainMatch()
            rest.CopyFrom(match)
            del rest.server_names[:]
            scope = rest.SerializeToString(deterministic=True)
            taken = self.names.setdefault(scope, set())
            fresh = [n for n in match.server_names if n not in taken]
            if not fresh:
                return
            if len(fresh) < len(match.server_names):
                del match.server_names[:]
                match.server_names.extend(fresh)
                key = match.SerializeToString(deterministic=True)
            taken.update(fresh)
        self.matches.add(key)
        self.chains.append(chain)


def destinations(route: Any, vs_ns: str, port: int) -> Target | None:
    """A ``tcp``/``tls`` route's destinations: one cluster, or ``[(cluster, weight)]``."""
    targets = []
    for d in get_list(route, "route"):
        dest = get(d, "destination")
        host = hosts.expand_short_name(get_str(dest, "host"), vs_ns)
        dport = get_int(get(dest, "port"), "number") or port
        name = naming.cluster_name(dport, get_str(dest, "subset"), host)
        targets.append((name, get_int(d, "weight") or 1))
    if len(targets) == 1:
        return targets[0][0]
    return targets or None


def _applies(m: Any, top: list[str], vs_ns: str, port: int) -> bool:
    gws = [qualify_gateway(str(g), vs_ns) for g in get_list(m, "gateways")] or top
    if MESH_GATEWAY not in gws:
        return False
    return not (get_int(m, "port") and get_int(m, "port") != port)


def tls_routes(snapshot: Snapshot, proxy: Proxy, svc: Service, port: int) -> list[L4Route]:
    """The ``tls`` matches of every mesh VirtualService for the host that apply to this
    sidecar on ``port``, VirtualServices in Istio's order, without repeated SNI sets (the
    first wins, as Istio's matchHasBeenHandled)."""
    result: list[L4Route] = []
    seen: set[tuple[str, ...]] = set()
    for vs in snapshot.mesh_virtual_services(svc.hostname, proxy.namespace):
        vs_ns = get_str(get(vs, "metadata"), "namespace") or "default"
        top = vs_gateways(vs)
        for route in get_list(get(vs, "spec"), "tls"):
            target = destinations(route, vs_ns, port)
            if target is None:
                continue
            for m in get_list(route, "match"):
                if not _applies(m, top, vs_ns, port):
                    continue
                snis = tuple(hosts.normalize(str(h)) for h in get_list(m, "sni_hosts"))
                if snis in seen:
                    continue
                seen.add(snis)
                result.append(L4Route(snis, target))
    return result


def tcp_target(snapshot: Snapshot, proxy: Proxy, svc: Service, port: int) -> Target | None:
    """The first mesh ``tcp`` route that applies on ``port`` (no match, or a match without
    destination subnets) over every mesh VirtualService for the host in Istio's order,
    else None."""
    for vs in snapshot.mesh_virtual_services(svc.hostname, proxy.namespace):
        vs_ns = get_str(get(vs, "metadata"), "namespace") or "default"
        top = vs_gateways(vs)
        for route in get_list(get(vs, "spec"), "tcp"):
            matches = get_list(route, "match")
            applicable = [m for m in matches if _applies(m, top, vs_ns, port)]
            if matches and not any(not get_list(m, "destination_subnets") for m in applicable):
                continue
            target = destinations(route, vs_ns, port)
            if target is not None:
                return target
    return None


def _shared_tls_target(routes: list[L4Route], svc: Service, default: str) -> Target:
    for r in routes:
        if not r.sni_hosts or any(hosts.matches(s, svc.hostname) for s in r.sni_hosts):
            return r.target
    return default


def _match(server_names: Iterable[str], cidr: str | None) -> Any:
    match = lc.FilterChainMatch(server_names=list(server_names))
    if cidr is not None:
        net = ipaddress.ip_network(cidr, strict=False)
        match.prefix_ranges.append(
            address_pb2.CidrRange(
                address_prefix=str(net.network_address), prefix_len=uint32(net.prefixlen)
            )
        )
    return match


def _chain(name: str, match: Any, target: Target, stat: str, access_log: bool) -> Any:
    return lc.FilterChain(
        name=name,
        filter_chain_match=match,
        filters=[filters.tcp_proxy(stat, target, access_log=access_log)],
    )


def _binds(svc: Service, port: int, own_ip: str) -> list[tuple[str, str | None]]:
    """(listener address, destination CIDR) pairs for a service's L4 listeners."""
    if svc.is_headless:
        found = {e.address for e in svc.endpoints.get(port, ()) if e.address != own_ip}
        return [(a, None) for a in sorted(found) if _is_ip(a)]
    binds: list[tuple[str, str | None]] = []
    for a in svc.addresses:
        if "/" in a:
            try:
                ipaddress.ip_network(a, strict=False)
            except ValueError:
                continue
            binds.append((WILDCARD, a))
        else:
            binds.append((a, None))
    return binds or [(WILDCARD, None)]


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _service_chains(
    snapshot: Snapshot,
    proxy: Proxy,
    svc: Service,
    port: ServicePort,
    vip: bool,
    cidr: str | None,
    access_log: bool,
) -> list[Any]:
    default = naming.cluster_name(port.number, "", svc.hostname)
    if not protocol.is_tls(port.protocol):
        target = tcp_target(snapshot, proxy, svc, port.number) or default
        stat = target if isinstance(target, str) else svc.hostname
        return [_chain("", _match((), cidr), target, stat, access_log)]
    routes = tls_routes(snapshot, proxy, svc, port.number)
    if vip:
        chains = []
        for r in routes:
            stat = r.target if isinstance(r.target, str) else svc.hostname
            chains.append(_chain("", _match(r.sni_hosts, cidr), r.target, stat, access_log))
        return chains or [_chain("", _match((), cidr), default, default, access_log)]
    if svc.hostname == hosts.ANY:
        return []
    # As Istio's, a route's own sniHosts make chains of their own (a VirtualService for
    # ``*.wikipedia.org`` on the listener of ``www.wikipedia.org`` takes ``en.`` too).
    chains = [
        _chain(
            r.sni_hosts[0], _match(r.sni_hosts, cidr), r.target, _stat(r.target, svc), access_log
        )
        for r in routes
        if r.sni_hosts
    ]
    target = _shared_tls_target(routes, svc, default)
    names = [svc.hostname]
    for alias in snapshot.aliases_for(proxy, svc.hostname):
        names.extend((alias, *hosts.short_forms(alias, proxy.namespace)))
    chains.append(_chain(svc.hostname, _match(names, cidr), target, _stat(target, svc), access_log))
    return chains


def _stat(target: Target, svc: Service) -> str:
    return target if isinstance(target, str) else svc.hostname


def _listener(entry: _Entry, catch_all: str, access_log: bool, refusal: str | None) -> Any:
    chains = list(entry.chains)
    has_default = any(not c.filter_chain_match.ByteSize() for c in chains)
    if not has_default:
        proxy = filters.tcp_proxy(catch_all, catch_all, access_log=access_log, refusal=refusal)
        chains.append(lc.FilterChain(name=naming.CATCH_ALL_TCP_CHAIN, filters=[proxy]))
    listener = listener_pb2.Listener(
        name=naming.listener_name(entry.address, entry.port),
        address=socket_address(entry.address, entry.port),
        bind_to_port=boolean(False),
        filter_chains=chains,
        traffic_direction=base_pb2.OUTBOUND,
    )
    if any(c.filter_chain_match.server_names for c in chains):
        listener.listener_filters.append(filters.tls_inspector_filter())
    return listener


def l4_listeners(
    snapshot: Snapshot,
    proxy: Proxy,
    ports: list[tuple[Service, ServicePort]],
    taken: set[str],
    catch_all: str,
    access_log: bool,
) -> list[Any]:
    """Listeners for the TCP/TLS ``ports`` of visible services; ``taken`` names the HTTP
    listeners that keep their port."""
    entries: dict[str, _Entry] = {}
    for svc, port in sorted(ports, key=lambda sp: (sp[0].hostname, sp[1].number)):
        if svc.is_alias:
            continue
        for address, cidr in _binds(svc, port.number, proxy.ip):
            name = naming.listener_name(address, port.number)
            if name in taken:
                continue
            vip = address != WILDCARD
            chains = _service_chains(snapshot, proxy, svc, port, vip, cidr, access_log)
            if not chains:
                continue
            entry = entries.get(name)
            if entry is None:
                entry = entries[name] = _Entry(address, port.number)
            for chain in chains:
                entry.add(chain)
    # A connection to an unknown SNI or address on a shared port is REGISTRY_ONLY's refusal.
    refusal = (
        refusals.registry_only_tcp(f"{proxy.namespace}/{proxy.pod}")
        if catch_all == naming.BLACKHOLE_CLUSTER
        else None
    )
    return [_listener(entries[n], catch_all, access_log, refusal) for n in sorted(entries)]
