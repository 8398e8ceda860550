"""Several mesh VirtualServices for one host (Istio's rule, ``model.meshvs``): TLS/TCP
filter chains come from all of them in order (oldest first), HTTP routes from the first
one with HTTP routes for the port. The ASMEgressTrafficPolicy compiler makes exactly this
for an HTTP and an HTTPS entry for one host."""

from __future__ import annotations

from typing import Any

import pytest
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from tests.golden.envoyconf import envoy_path, envoy_validate
from tests.golden.seedworld import decode, sleep_proxy, step_resources

from meshgate.model.snapshot import Snapshot
from meshgate.translate import translate
from meshgate.translate.output import ProxyConfig

HOST = "httpbin.org"
EGW = "istio-egressgateway.istio-system.svc.cluster.local"
TO_GW_HTTP = f"outbound|80|httpbin|{EGW}"
TO_GW_TLS = f"outbound|443|httpbin|{EGW}"

SERVICES = f"""apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: httpbin-http}}
spec:
  hosts: [{HOST}]
  location: MESH_EXTERNAL
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: httpbin-https}}
spec:
  hosts: [{HOST}]
  location: MESH_EXTERNAL
  ports: [{{number: 443, name: tls, protocol: TLS}}]
  resolution: DNS
"""


def _http_vs(name: str, created: str = "2024-01-01T00:00:00Z") -> str:
    return f"""apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}, creationTimestamp: "{created}"}}
spec:
  hosts: [{HOST}]
  http:
  - match: [{{port: 80}}]
    route: [{{destination: {{host: {EGW}, subset: httpbin, port: {{number: 80}}}}}}]
"""


def _tls_vs(name: str, cluster_subset: str, created: str, sni: str = HOST) -> str:
    return f"""apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}, creationTimestamp: "{created}"}}
spec:
  hosts: [{HOST}]
  tls:
  - match: [{{port: 443, sniHosts: ["{sni}"]}}]
    route: [{{destination: {{host: {EGW}, subset: {cluster_subset}, port: {{number: 443}}}}}}]
"""


def _tcp_vs(name: str, subset: str, created: str) -> str:
    return f"""apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}, creationTimestamp: "{created}"}}
spec:
  hosts: [db.example.com]
  tcp:
  - match: [{{port: 5432}}]
    route: [{{destination: {{host: {EGW}, subset: {subset}, port: {{number: 5432}}}}}}]
"""


def _sleep(*docs: str) -> ProxyConfig:
    snap = Snapshot.build(step_resources(2) + decode("---\n".join(docs), "extra.yaml"))
    return translate(snap, sleep_proxy(snap))


def _target(chain: Any) -> str:
    (f,) = chain.filters
    proxy = tcp_proxy_pb2.TcpProxy()
    assert f.typed_config.Unpack(proxy)
    return str(proxy.cluster)


def _sni_chains(config: ProxyConfig, listener: str) -> list[tuple[tuple[str, ...], str]]:
    (lis,) = [x for x in config.listeners if x.name == listener]
    return [
        (tuple(c.filter_chain_match.server_names), _target(c))
        for c in lis.filter_chains
        if c.filter_chain_match.server_names
    ]


def _http_clusters(config: ProxyConfig, host: str) -> list[str]:
    (rc,) = [r for r in config.routes if r.name == "80"]
    (vh,) = [v for v in rc.virtual_hosts if host in v.domains]
    return [r.route.cluster for r in vh.routes]


# Names chosen so that either VirtualService sorts first by name: the one a sidecar used
# to take alone hid the other's routes (HTTPS went around the gateway, or HTTP did).
@pytest.mark.parametrize(("http_name", "tls_name"), [("a-http", "b-tls"), ("b-http", "a-tls")])
def test_http_and_tls_virtual_services_for_one_host_both_apply(
    http_name: str, tls_name: str
) -> None:
    config = _sleep(
        SERVICES,
        _http_vs(http_name),
        _tls_vs(tls_name, "httpbin", "2024-01-01T00:00:00Z"),
    )
    assert _http_clusters(config, HOST) == [TO_GW_HTTP]
    assert _sni_chains(config, "0.0.0.0_443") == [((HOST,), TO_GW_TLS)]


def test_conflicting_tls_matches_the_oldest_virtual_service_wins() -> None:
    # "z-old" sorts last by name but was created first: Istio orders by creationTimestamp.
    config = _sleep(
        SERVICES,
        _tls_vs("a-new", "new", "2024-06-01T00:00:00Z"),
        _tls_vs("z-old", "old", "2020-01-01T00:00:00Z"),
    )
    assert _sni_chains(config, "0.0.0.0_443") == [((HOST,), f"outbound|443|old|{EGW}")]


def test_tls_matches_of_several_virtual_services_keep_istio_order() -> None:
    # Different SNI sets from two VirtualServices: both chains, the older one's first.
    config = _sleep(
        SERVICES,
        _tls_vs("a-new", "new", "2024-06-01T00:00:00Z", sni="*.httpbin.org"),
        _tls_vs("z-old", "old", "2020-01-01T00:00:00Z"),
    )
    assert _sni_chains(config, "0.0.0.0_443") == [
        ((HOST,), f"outbound|443|old|{EGW}"),
        (("*.httpbin.org",), f"outbound|443|new|{EGW}"),
    ]


def test_private_virtual_service_comes_before_an_older_public_one() -> None:
    private = _tls_vs("mine", "mine", "2024-06-01T00:00:00Z").replace(
        "spec:\n", "spec:\n  exportTo: ['.']\n"
    )
    config = _sleep(SERVICES, _tls_vs("public", "public", "2020-01-01T00:00:00Z"), private)
    assert _sni_chains(config, "0.0.0.0_443") == [((HOST,), f"outbound|443|mine|{EGW}")]


def test_tcp_routes_come_from_the_first_virtual_service_in_istio_order() -> None:
    db = """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db}
spec:
  hosts: [db.example.com]
  addresses: [192.0.2.20]
  location: MESH_EXTERNAL
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 192.0.2.20}]
"""
    config = _sleep(
        db,
        _tcp_vs("a-new", "new", "2024-06-01T00:00:00Z"),
        _tcp_vs("z-old", "old", "2020-01-01T00:00:00Z"),
    )
    (lis,) = [x for x in config.listeners if x.name == "192.0.2.20_5432"]
    assert [_target(c) for c in lis.filter_chains if not c.name] == [f"outbound|5432|old|{EGW}"]


def test_tls_only_virtual_service_does_not_hide_an_http_one_on_port_80() -> None:
    # The older VirtualService has no HTTP routes: Istio builds no virtual host from it.
    config = _sleep(
        SERVICES,
        _tls_vs("a-tls", "httpbin", "2020-01-01T00:00:00Z"),
        _http_vs("z-http", "2024-01-01T00:00:00Z"),
    )
    assert _http_clusters(config, HOST) == [TO_GW_HTTP]


@pytest.mark.skipif(envoy_path() is None, reason="envoy binary not installed")
def test_envoy_accepts_split_virtual_services() -> None:
    config = _sleep(
        SERVICES,
        _http_vs("a-http"),
        _tls_vs("b-tls", "httpbin", "2024-01-01T00:00:00Z"),
        _tls_vs("c-tls", "other", "2020-01-01T00:00:00Z"),
        _tls_vs("d-tls", "wild", "2021-01-01T00:00:00Z", sni="*.httpbin.org"),
    )
    result = envoy_validate(config)
    assert result.returncode == 0, result.stderr[-2000:]
