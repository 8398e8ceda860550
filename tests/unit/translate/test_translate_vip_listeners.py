"""Sidecar TCP/TLS listeners follow Istio: a service with an address gets ``<vip>_<port>``
(no SNI needed), only services without one share ``0.0.0.0_<port>`` by SNI."""

from __future__ import annotations

from typing import Any

import pytest
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from tests.golden.envoyconf import envoy_path, envoy_validate
from tests.golden.seedworld import decode, sleep_proxy, step_resources

from meshgate.model.snapshot import Snapshot
from meshgate.translate import translate
from meshgate.translate.output import ProxyConfig

BACKEND = """apiVersion: v1
kind: Service
metadata: {name: secure, namespace: default}
spec:
  clusterIP: 10.96.7.7
  selector: {app: secure}
  ports:
  - {name: https, port: 443, targetPort: 8443}
  - {name: tcp-db, port: 5432}
"""

NO_VIP = """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: cnn}
spec:
  hosts: [edition.cnn.com]
  location: MESH_EXTERNAL
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
"""

WITH_ADDRESSES = """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db}
spec:
  hosts: [db.example.com]
  addresses: [192.0.2.10, 198.51.100.0/24]
  location: MESH_EXTERNAL
  ports: [{number: 443, name: tls, protocol: TLS}, {number: 3306, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 192.0.2.10}]
"""


def _sleep(extra: str) -> ProxyConfig:
    snap = Snapshot.build(step_resources(2) + decode(extra, "extra.yaml"))
    return translate(snap, sleep_proxy(snap))


def _listener(config: ProxyConfig, name: str) -> Any:
    (listener,) = [lis for lis in config.listeners if lis.name == name]
    return listener


def _target(chain: Any) -> str:
    (f,) = chain.filters
    proxy = tcp_proxy_pb2.TcpProxy()
    assert f.typed_config.Unpack(proxy)
    return str(proxy.cluster) or ",".join(c.name for c in proxy.weighted_clusters.clusters)


def _chains(listener: Any) -> list[tuple[tuple[str, ...], list[str], str]]:
    return [
        (
            tuple(c.filter_chain_match.server_names),
            [
                f"{r.address_prefix}/{r.prefix_len.value}"
                for r in c.filter_chain_match.prefix_ranges
            ],
            _target(c),
        )
        for c in listener.filter_chains
    ]


def test_tls_port_of_a_kubernetes_service_gets_a_vip_listener_without_sni() -> None:
    config = _sleep(BACKEND + "---\n" + NO_VIP)
    vip = _listener(config, "10.96.7.7_443")
    assert vip.address.socket_address.address == "10.96.7.7"
    assert vip.address.socket_address.port_value == 443
    assert vip.bind_to_port.value is False
    # One match-all chain straight to the service: no SNI match, no catch-all, no inspector.
    assert _chains(vip) == [((), [], "outbound|443||secure.default.svc.cluster.local")]
    assert not vip.listener_filters
    # The service without addresses still shares 0.0.0.0_443 by SNI, and only it does.
    shared = _listener(config, "0.0.0.0_443")
    assert _chains(shared) == [
        (("edition.cnn.com",), [], "outbound|443||edition.cnn.com"),
        ((), [], "BlackHoleCluster"),
    ]
    assert [f.name for f in shared.listener_filters] == ["envoy.filters.listener.tls_inspector"]


def test_tcp_port_of_a_kubernetes_service_gets_a_vip_listener() -> None:
    config = _sleep(BACKEND)
    vip = _listener(config, "10.96.7.7_5432")
    assert _chains(vip) == [((), [], "outbound|5432||secure.default.svc.cluster.local")]
    assert "0.0.0.0_5432" not in [lis.name for lis in config.listeners]


def test_virtual_outbound_hands_connections_to_the_vip_listener() -> None:
    config = _sleep(BACKEND)
    outbound = _listener(config, "virtualOutbound")
    assert outbound.use_original_dst.value is True
    # REGISTRY_ONLY: a TLS client's SNI is read too, for the refusal's log line.
    assert [f.name for f in outbound.listener_filters] == [
        "envoy.filters.listener.original_dst",
        "envoy.filters.listener.tls_inspector",
    ]


def test_service_entry_addresses_get_vip_listeners_and_cidrs_a_prefix_match() -> None:
    config = _sleep(WITH_ADDRESSES)
    names = [lis.name for lis in config.listeners]
    assert {"192.0.2.10_443", "192.0.2.10_3306", "0.0.0.0_443", "0.0.0.0_3306"} <= set(names)
    assert _chains(_listener(config, "192.0.2.10_443")) == [
        ((), [], "outbound|443||db.example.com")
    ]
    # A CIDR cannot be a listener address: the shared listener matches it by destination.
    assert _chains(_listener(config, "0.0.0.0_443")) == [
        (("db.example.com",), ["198.51.100.0/24"], "outbound|443||db.example.com"),
        ((), [], "BlackHoleCluster"),
    ]
    assert _chains(_listener(config, "0.0.0.0_3306")) == [
        ((), ["198.51.100.0/24"], "outbound|3306||db.example.com"),
        ((), [], "BlackHoleCluster"),
    ]


def test_tls_virtual_service_on_a_vip_listener_matches_its_sni_hosts() -> None:
    vs = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: secure}
spec:
  hosts: [secure.default.svc.cluster.local]
  tls:
  - match: [{port: 443, sniHosts: [a.example.com]}]
    route: [{destination: {host: edition.cnn.com, port: {number: 443}}}]
  - match: [{port: 443, sniHosts: [a.example.com]}]
    route: [{destination: {host: unreachable.example.com}}]
"""
    config = _sleep(BACKEND + "---\n" + NO_VIP + "---\n" + vs)
    vip = _listener(config, "10.96.7.7_443")
    assert _chains(vip) == [
        (("a.example.com",), [], "outbound|443||edition.cnn.com"),
        ((), [], "BlackHoleCluster"),
    ]
    assert [f.name for f in vip.listener_filters] == ["envoy.filters.listener.tls_inspector"]


def test_tcp_virtual_service_routes_the_vip_listener() -> None:
    vs = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: db}
spec:
  hosts: [secure]
  tcp:
  - match: [{port: 5432}]
    route:
    - {destination: {host: secure, port: {number: 443}}, weight: 30}
    - {destination: {host: edition.cnn.com, port: {number: 443}}, weight: 70}
"""
    config = _sleep(BACKEND + "---\n" + NO_VIP + "---\n" + vs)
    assert _chains(_listener(config, "10.96.7.7_5432")) == [
        ((), [], "outbound|443||secure.default.svc.cluster.local,outbound|443||edition.cnn.com")
    ]


def test_allow_any_catch_all_is_passthrough() -> None:
    snap = Snapshot.build(step_resources(1) + decode(NO_VIP, "extra.yaml"))
    config = translate(snap, sleep_proxy(snap))
    assert _chains(_listener(config, "0.0.0.0_443"))[-1] == ((), [], "PassthroughCluster")


def test_http_listener_keeps_its_port() -> None:
    http_vip = """apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  clusterIP: 10.96.8.8
  ports: [{name: http, port: 8443}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: raw}
spec:
  hosts: [raw.example.com]
  ports: [{number: 8443, name: tcp, protocol: TCP}]
  resolution: DNS
"""
    config = _sleep(http_vip)
    names = [lis.name for lis in config.listeners]
    assert "0.0.0.0_8443" in names
    assert "10.96.8.8_8443" not in names
    assert _listener(config, "0.0.0.0_8443").filter_chains[0].filters[0].name == (
        "envoy.filters.network.http_connection_manager"
    )


@pytest.mark.skipif(envoy_path() is None, reason="envoy binary not installed")
def test_envoy_accepts_the_listeners() -> None:
    # Duplicate filter chain matches would make Envoy reject a listener; the merge drops them.
    config = _sleep(BACKEND + "---\n" + NO_VIP + "---\n" + WITH_ADDRESSES)
    result = envoy_validate(config)
    assert result.returncode == 0, result.stderr[-2000:]
