"""Envoy resource names the mesh depends on, exactly as Istio spells them.

Rules: every generated name comes from a function or constant here, so logs, tests, the
access-log sink and ``describe``/``trace`` agree on one spelling.
"""

from __future__ import annotations

PASSTHROUGH_CLUSTER = "PassthroughCluster"
BLACKHOLE_CLUSTER = "BlackHoleCluster"
VIRTUAL_OUTBOUND_LISTENER = "virtualOutbound"
VIRTUAL_OUTBOUND_PORT = 15001
ALLOW_ANY_VHOST = "allow_any"
BLOCK_ALL_VHOST = "block_all"
DEFAULT_ROUTE = "default"
CATCH_ALL_TCP_CHAIN = "PassthroughFilterChain"
OUTBOUND_SERVER_NAME = "envoy"
GATEWAY_SERVER_NAME = "istio-envoy"


def cluster_name(port: int, subset: str, host: str, direction: str = "outbound") -> str:
    """``outbound|80||aliyun.com`` (Istio's BuildSubsetKey)."""
    return f"{direction}|{port}|{subset}|{host}"


def listener_name(address: str, port: int) -> str:
    return f"{address}_{port}"


def sidecar_route_name(port: int) -> str:
    return str(port)


def gateway_route_name(port: int) -> str:
    return f"http.{port}"


def gateway_https_route_name(port: int, port_name: str, gateway: str, namespace: str) -> str:
    """``https.443.https.egress-gw.default``: a TLS-terminating server's own routes (Istio)."""
    return f"https.{port}.{port_name}.{gateway}.{namespace}"


def vhost_name(host: str, port: int) -> str:
    return f"{host}:{port}"


def blackhole_vhost(port: int) -> str:
    return f"blackhole:{port}"


def http_route_name(route_name: str, match_name: str) -> str:
    """``name`` or ``name.match``; empty when the VirtualService route is unnamed."""
    if route_name and match_name:
        return f"{route_name}.{match_name}"
    return route_name
