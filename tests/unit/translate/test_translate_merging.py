"""Merged services and DestinationRules in the generated Envoy config, and the route metadata
naming the VirtualService behind each route (the reviewer's scenarios on the seed world)."""

from __future__ import annotations

from envoy.extensions.transport_sockets.tls.v3 import tls_pb2
from google.protobuf import json_format
from tests.golden.envoyconf import by_name, names, tcp_proxy, vhost
from tests.golden.seedworld import decode, sleep_proxy, step_resources

from meshgate.cli.proxy_config import route_rows
from meshgate.model.snapshot import Snapshot
from meshgate.translate import translate

GW = "istio-egressgateway.istio-system.svc.cluster.local"
SE_HTTPS = """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: NAME}
spec:
  hosts: [aliyun.com]
  ports: [{number: 443, name: https, protocol: HTTPS}]
  resolution: DNS
  location: MESH_EXTERNAL
"""
FOR_CNN = f"""apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: egressgateway-for-cnn}}
spec:
  host: {GW}
  subsets: [{{name: cnn}}]
"""
TO_GATEWAY = f"""apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: to-gateway}}
spec:
  host: {GW}
  trafficPolicy: {{tls: {{mode: SIMPLE, insecureSkipVerify: true}}}}
"""


def _snapshot(step: int, *extra: str) -> Snapshot:
    resources = step_resources(step)
    for text in extra:
        resources.extend(decode(text))
    return Snapshot.build(resources)


def test_second_service_entry_adds_a_port_and_keeps_the_first() -> None:
    for name in ("aliyun-https", "zz-https"):
        snap = _snapshot(3, SE_HTTPS.replace("NAME", name))
        cfg = translate(snap, sleep_proxy(snap))
        clusters = names(cfg.clusters)
        assert "outbound|80||aliyun.com" in clusters, name
        assert "outbound|443||aliyun.com" in clusters, name
        http = vhost(by_name(cfg.routes, "80"), "aliyun.com:80")
        assert http.routes[0].route.cluster == "outbound|80||aliyun.com"
        tls = by_name(cfg.listeners, "0.0.0.0_443")
        chains = {c.name: c for c in tls.filter_chains}
        assert list(chains["aliyun.com"].filter_chain_match.server_names) == ["aliyun.com"]
        assert tcp_proxy(chains["aliyun.com"]).cluster == "outbound|443||aliyun.com"
        for port in (80, 443):
            cluster = by_name(cfg.clusters, f"outbound|{port}||aliyun.com")
            endpoint = cluster.load_assignment.endpoints[0].lb_endpoints[0].endpoint
            assert endpoint.address.socket_address.port_value == port


def test_destination_rules_for_one_host_merge_into_the_cluster() -> None:
    snap = _snapshot(4, FOR_CNN, TO_GATEWAY)
    cfg = translate(snap, sleep_proxy(snap))
    for name in (f"outbound|80||{GW}", f"outbound|80|cnn|{GW}"):
        cluster = by_name(cfg.clusters, name)
        assert cluster.transport_socket.name == "envoy.transport_sockets.tls", name
        ctx = tls_pb2.UpstreamTlsContext()
        cluster.transport_socket.typed_config.Unpack(ctx)
        assert ctx.sni == GW
        assert not ctx.common_tls_context.HasField("validation_context")  # insecureSkipVerify
    # Without the second rule the subset exists but nothing originates TLS.
    snap = _snapshot(4, FOR_CNN)
    cfg = translate(snap, sleep_proxy(snap))
    assert not by_name(cfg.clusters, f"outbound|80||{GW}").HasField("transport_socket")
    assert f"outbound|80|cnn|{GW}" in names(cfg.clusters)


def test_virtual_service_routes_carry_istio_config_metadata() -> None:
    snap = _snapshot(4)
    cfg = translate(snap, sleep_proxy(snap))
    route = vhost(by_name(cfg.routes, "80"), "aliyun.com:80").routes[0]
    config = route.metadata.filter_metadata["istio"].fields["config"].string_value
    assert config == (
        "/apis/networking.istio.io/v1/namespaces/default/virtual-service/egressgateway-vs"
    )
    # Default routes (no VirtualService) carry none, as in Istio.
    default = vhost(by_name(cfg.routes, "80"), f"{GW}:80").routes[0]
    assert default.name == "default" and not default.HasField("metadata")

    # proxy-config route reads it back from a config dump as istioctl does.
    dump = {
        "configs": [
            {
                "@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
                "dynamic_route_configs": [
                    {
                        "route_config": json_format.MessageToDict(
                            by_name(cfg.routes, "80"), preserving_proto_field_name=True
                        )
                    }
                ],
            }
        ]
    }
    rows = {(r[1], r[5]) for r in route_rows(dump)[1:]}
    assert ("aliyun.com:80", "egressgateway-vs.default") in rows
    assert (f"{GW}:80", "-") in rows
