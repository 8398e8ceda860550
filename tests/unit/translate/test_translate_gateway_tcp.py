"""Gateway TCP servers (Istio's buildGatewayTCPBasedFilterChains): plain TCP servers and
terminating TLS servers route by VirtualService ``tcp`` routes; with no route, a logged
refusal (plain TCP) or the unknown-SNI chain (TLS)."""

from __future__ import annotations

import json

import pytest
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2
from google.protobuf import json_format
from tests.golden.envoyconf import by_name, envoy_path, envoy_validate, tcp_proxy
from tests.golden.seedworld import decode, gateway_proxy, step_resources
from tests.golden.test_golden_gateway_tcp import TCP_WORLD, tcp_snapshot

from meshgate.model.snapshot import Snapshot
from meshgate.translate import translate


def _listeners() -> list:
    snap = tcp_snapshot()
    return list(translate(snap, gateway_proxy(snap)).listeners)


def _log_status(proxy: object) -> str:
    log = json_format.MessageToDict(proxy.access_log[0])  # type: ignore[attr-defined]
    return json.dumps(log)


def test_plain_tcp_server_proxies_to_the_tcp_route_destination() -> None:
    listener = by_name(_listeners(), "0.0.0.0_9000")
    (chain,) = listener.filter_chains
    assert not chain.filter_chain_match.ByteSize()
    assert not chain.HasField("transport_socket")
    assert tcp_proxy(chain).cluster == "outbound|80||tcp.example.com"
    assert not listener.listener_filters


def test_istio_mutual_tls_server_terminates_then_routes_tcp_weighted() -> None:
    listener = by_name(_listeners(), "0.0.0.0_9001")
    (chain,) = listener.filter_chains
    assert list(chain.filter_chain_match.server_names) == ["tcp.example.com"]
    ctx = tls_pb2.DownstreamTlsContext()
    assert chain.transport_socket.typed_config.Unpack(ctx)
    assert ctx.require_client_certificate.value
    assert [c.name for c in ctx.common_tls_context.tls_certificate_sds_secret_configs] == [
        "default"
    ]
    weighted = [(c.name, c.weight) for c in tcp_proxy(chain).weighted_clusters.clusters]
    assert weighted == [
        ("outbound|80||tcp.example.com", 80),
        ("outbound|80|v2|tcp.example.com", 20),
    ]
    assert listener.default_filter_chain.name == "unknown-sni"


def test_terminating_tls_server_takes_tcp_routes_not_tls_routes() -> None:
    listener = by_name(_listeners(), "0.0.0.0_9443")
    first, passthrough = listener.filter_chains
    assert tcp_proxy(first).cluster == "outbound|443||tls.example.com"
    assert first.HasField("transport_socket")
    assert list(passthrough.filter_chain_match.server_names) == ["pass.example.com"]
    assert tcp_proxy(passthrough).cluster == "outbound|443||pass.example.com"
    assert not passthrough.HasField("transport_socket")


def test_tcp_server_without_route_refuses_and_logs_why() -> None:
    (chain,) = by_name(_listeners(), "0.0.0.0_9002").filter_chains
    proxy = tcp_proxy(chain)
    assert proxy.cluster == "BlackHoleCluster"
    assert "no tcp route on gateway for port 9002 (from %DOWNSTREAM_REMOTE_ADDRESS%)" in (
        _log_status(proxy)
    )


def test_terminating_tls_server_without_route_has_no_chain() -> None:
    extra = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: lonely, namespace: istio-system}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: 9100, name: tls-9100, protocol: TLS}
    hosts: [nothing.example.com]
    tls: {mode: ISTIO_MUTUAL}
"""
    snap = Snapshot.build(step_resources(4) + decode(TCP_WORLD + "---" + extra, "x.yaml"))
    names = [m.name for m in translate(snap, gateway_proxy(snap)).listeners]
    assert "0.0.0.0_9100" not in names


def test_route_match_port_and_gateway_select_the_route() -> None:
    """A route matched to another gateway, or another port, does not apply."""
    extra = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: other-gw, namespace: istio-system}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: 9200, name: tcp-9200, protocol: TCP}
    hosts: [tcp.example.com]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: other, namespace: default}
spec:
  hosts: [tcp.example.com]
  gateways: [istio-system/other-gw]
  tcp:
  - match: [{gateways: [istio-system/tcp-gw]}]
    route: [{destination: {host: wrong.example.com, port: {number: 1}}}]
  - match: [{port: 9999}]
    route: [{destination: {host: wrong.example.com, port: {number: 2}}}]
  - route: [{destination: {host: tcp.example.com, port: {number: 80}}}]
"""
    snap = Snapshot.build(step_resources(4) + decode(TCP_WORLD + "---" + extra, "x.yaml"))
    listener = by_name(translate(snap, gateway_proxy(snap)).listeners, "0.0.0.0_9200")
    (chain,) = listener.filter_chains
    assert tcp_proxy(chain).cluster == "outbound|80||tcp.example.com"


def test_udp_server_gets_no_listener() -> None:
    extra = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: udp, namespace: istio-system}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: 9300, name: udp-9300, protocol: UDP}
    hosts: [tcp.example.com]
"""
    snap = Snapshot.build(step_resources(4) + decode(TCP_WORLD + "---" + extra, "x.yaml"))
    names = [m.name for m in translate(snap, gateway_proxy(snap)).listeners]
    assert "0.0.0.0_9300" not in names and "0.0.0.0_9000" in names


@pytest.mark.skipif(envoy_path() is None, reason="no envoy binary (pip package envoy)")
def test_envoy_accepts_the_tcp_gateway() -> None:
    snap = tcp_snapshot()
    result = envoy_validate(translate(snap, gateway_proxy(snap)))
    assert result.returncode == 0, result.stderr + result.stdout
