"""Wildcard hosts forwarded to the name the client asked for: Envoy's dynamic forward proxy.

Rules of this module:
- A wildcard ServiceEntry host (``*.wikipedia.org``) names no address to dial. A sidecar
  has one anyway: the connection's original destination, which the application resolved
  itself; so resolution NONE stays Istio's ORIGINAL_DST there. A gateway has none (the
  original destination of a connection to a gateway is the gateway), so on routers a
  wildcard host with resolution NONE or DYNAMIC_DNS, and on sidecars one with
  DYNAMIC_DNS (Istio's API: "obtains the FQDN from the Host header or SNI to perform DNS
  resolution"), gets a dynamic forward proxy cluster instead
  (``envoy.clusters.dynamic_forward_proxy``): the proxy resolves the name the client sent
  and connects there. Istio's gateways cannot do this without an EnvoyFilter (its wildcard
  task's "arbitrary domains"); meshgate does it for what the YAML already says.
- Which name: for TLS the SNI (``envoy.filters.network.sni_dynamic_forward_proxy`` just
  before the chain's ``tcp_proxy``, the service's target port as upstream port); for HTTP
  the Host header (``envoy.filters.http.dynamic_forward_proxy`` just before the router in
  every HTTP connection manager of the proxy; Envoy leaves routes to other clusters alone).
  Only names the listener already admitted get there: the chain's SNI match or the
  virtual host's domains are the wildcard, so nothing else is resolved. On gateways the SSRF
  guard still refuses any resolved address inside the mesh.
- One DNS cache per proxy (``DNS_CACHE``), the same config in every filter and cluster (Envoy
  refuses two configs under one name): IPv4 only, c-ares without search domains (the names
  are absolute), re-resolved as DNS clusters are (60 s, TTL respected).
- ``finish`` adds the filters to finished listeners, in place and idempotently, and only
  where a dynamic cluster is used: proxies without one are byte-for-byte unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_components_pb2 as lc
from envoy.extensions.clusters.dynamic_forward_proxy.v3 import cluster_pb2 as dfp_cluster_pb2
from envoy.extensions.common.dynamic_forward_proxy.v3 import dns_cache_pb2
from envoy.extensions.filters.http.dynamic_forward_proxy.v3 import (
    dynamic_forward_proxy_pb2 as dfp_http_pb2,
)
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.sni_dynamic_forward_proxy.v3 import (
    sni_dynamic_forward_proxy_pb2 as dfp_sni_pb2,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2

from meshgate.model import hosts, protocol
from meshgate.model.proxy import Proxy
from meshgate.model.services import Service
from meshgate.translate.pb import duration, pack

CLUSTER_TYPE = "envoy.clusters.dynamic_forward_proxy"
HTTP_FILTER = "envoy.filters.http.dynamic_forward_proxy"
SNI_FILTER = "envoy.filters.network.sni_dynamic_forward_proxy"
DNS_CACHE = "meshgate_dynamic_dns"
_HCM = "envoy.filters.network.http_connection_manager"
_TCP_PROXY = "envoy.filters.network.tcp_proxy"
_ROUTER = "envoy.filters.http.router"
_REFRESH = "60s"


def applies(service: Service, proxy: Proxy) -> bool:
    """Whether ``service``'s clusters on ``proxy`` forward to the name the client asked for."""
    if not hosts.is_wildcard(service.hostname) or service.kind == "Service":
        return False
    if service.resolution == "DYNAMIC_DNS":
        return True
    return service.resolution == "NONE" and proxy.is_router


def dns_cache() -> Any:
    # Imported here: clusters imports this module, and the resolver config lives there.
    from meshgate.translate.clusters import resolver_config

    config = dns_cache_pb2.DnsCacheConfig(
        name=DNS_CACHE,
        dns_lookup_family=cluster_pb2.Cluster.V4_ONLY,
        dns_refresh_rate=duration(_REFRESH),
    )
    config.typed_dns_resolver_config.CopyFrom(resolver_config(absolute_names=True))
    return config


def cluster(name: str, connect_timeout: str) -> Any:
    """A dynamic forward proxy cluster: hosts come from the DNS cache, per name asked."""
    return cluster_pb2.Cluster(
        name=name,
        connect_timeout=duration(connect_timeout),
        lb_policy=cluster_pb2.Cluster.CLUSTER_PROVIDED,
        cluster_type=cluster_pb2.Cluster.CustomClusterType(
            name=CLUSTER_TYPE,
            typed_config=pack(dfp_cluster_pb2.ClusterConfig(dns_cache_config=dns_cache())),
        ),
    )


def is_dynamic(c: Any) -> bool:
    return bool(c.HasField("cluster_type") and c.cluster_type.name == CLUSTER_TYPE)


def _sni_filter(port: int) -> Any:
    config = dfp_sni_pb2.FilterConfig(dns_cache_config=dns_cache(), port_value=port)
    return lc.Filter(name=SNI_FILTER, typed_config=pack(config))


def _http_filter() -> Any:
    config = dfp_http_pb2.FilterConfig(dns_cache_config=dns_cache())
    return hcm_pb2.HttpFilter(name=HTTP_FILTER, typed_config=pack(config))


def _tcp_targets(f: Any) -> list[str]:
    proxy = tcp_proxy_pb2.TcpProxy()
    f.typed_config.Unpack(proxy)
    if proxy.cluster:
        return [proxy.cluster]
    return [c.name for c in proxy.weighted_clusters.clusters]


def _finish_chain(chain: Any, ports: Mapping[str, int], http: bool) -> None:
    out = []
    for f in chain.filters:
        if f.name in (SNI_FILTER, HTTP_FILTER):
            return  # done already
        if f.name == _TCP_PROXY:
            dynamic = [ports[t] for t in _tcp_targets(f) if t in ports]
            if dynamic:
                out.append(_sni_filter(dynamic[0]))
        elif f.name == _HCM and http:
            hcm = hcm_pb2.HttpConnectionManager()
            f.typed_config.Unpack(hcm)
            if not any(h.name == HTTP_FILTER for h in hcm.http_filters):
                filters = list(hcm.http_filters)
                at = next((i for i, h in enumerate(filters) if h.name == _ROUTER), len(filters))
                filters.insert(at, _http_filter())
                del hcm.http_filters[:]
                hcm.http_filters.extend(filters)
                f = lc.Filter(name=_HCM, typed_config=pack(hcm))
        out.append(f)
    del chain.filters[:]
    chain.filters.extend(out)


def upstream_ports(
    clusters: Iterable[Any], services: Iterable[Service]
) -> tuple[dict[str, int], bool]:
    """(upstream port of every dynamic cluster by name, whether one serves an HTTP port).

    The upstream port is the service port's ``targetPort``, else its number (a Host header
    with a port of its own still wins for HTTP, as in Envoy)."""
    by_host = {s.hostname: s for s in services}
    ports: dict[str, int] = {}
    http = False
    for c in clusters:
        if not is_dynamic(c):
            continue
        _, number, _, host = c.name.split("|", 3)
        service = by_host.get(host)
        port = service.port(int(number)) if service is not None else None
        if port is None:
            continue
        ports[c.name] = port.target_port or port.number
        http = http or protocol.is_http(port.protocol)
    return ports, http


def finish(listeners: Iterable[Any], ports: Mapping[str, int], http: bool) -> None:
    """Add the dynamic forward proxy filters to ``listeners`` in place. ``ports``: the
    upstream port of every dynamic cluster by name; ``http``: some HTTP route may lead to
    one (the HTTP filter is then in every connection manager)."""
    if not ports:
        return
    for listener in listeners:
        for chain in listener.filter_chains:
            _finish_chain(chain, ports, http)
        if listener.HasField("default_filter_chain"):
            _finish_chain(listener.default_filter_chain, ports, http)
