"""The seed's four steps, checked on the generated Envoy config (egress-semantics §0)."""

from __future__ import annotations

import json
import random

from envoy.config.cluster.v3 import cluster_pb2
from envoy.extensions.access_loggers.stream.v3 import stream_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from google.protobuf import json_format
from tests.golden.envoyconf import by_name, hcm, names, tcp_proxy, vhost
from tests.golden.seedworld import (
    GATEWAY_IP,
    decode,
    gateway_proxy,
    sleep_proxy,
    step_resources,
    step_snapshot,
)

from meshgate.model.snapshot import Snapshot
from meshgate.translate import resource_names, translate
from meshgate.translate.accesslog import ACCESS_LOG_FIELDS
from meshgate.translate.output import ROUTE

GW_HOST = "istio-egressgateway.istio-system.svc.cluster.local"


def test_step1_allow_any_passthrough() -> None:
    snap = step_snapshot(1)
    cfg = translate(snap, sleep_proxy(snap))
    outbound = by_name(cfg.listeners, "virtualOutbound")
    assert outbound.use_original_dst.value is True
    assert outbound.address.socket_address.port_value == 15001
    assert [f.name for f in outbound.listener_filters] == ["envoy.filters.listener.original_dst"]
    chains = {c.name: c for c in outbound.filter_chains}
    assert tcp_proxy(chains["PassthroughFilterChain"]).cluster == "PassthroughCluster"
    assert tcp_proxy(chains["virtualOutbound-blackhole"]).cluster == "BlackHoleCluster"

    http = by_name(cfg.listeners, "0.0.0.0_80")
    assert http.bind_to_port.value is False
    manager = hcm(http)
    assert manager.rds.route_config_name == "80"
    assert manager.use_remote_address.value is False
    assert manager.server_name == ""  # Envoy's default: "envoy"
    assert manager.server_header_transformation == hcm_pb2.HttpConnectionManager.OVERWRITE
    assert manager.generate_request_id.value is True
    assert [f.name for f in manager.http_filters][-1] == "envoy.filters.http.router"
    assert not manager.access_log

    routes = by_name(cfg.routes, "80")
    assert routes.ignore_port_in_host_matching
    allow = vhost(routes, "allow_any")
    assert list(allow.domains) == ["*"]
    assert allow.routes[0].name == "allow_any"
    assert allow.routes[0].route.cluster == "PassthroughCluster"
    assert allow.routes[0].route.timeout.seconds == 0

    passthrough = by_name(cfg.clusters, "PassthroughCluster")
    assert passthrough.type == cluster_pb2.Cluster.ORIGINAL_DST
    assert passthrough.lb_policy == cluster_pb2.Cluster.CLUSTER_PROVIDED
    assert passthrough.connect_timeout.seconds == 10
    blackhole = by_name(cfg.clusters, "BlackHoleCluster")
    assert blackhole.type == cluster_pb2.Cluster.STATIC
    assert not blackhole.load_assignment.endpoints


def test_step2_registry_only_blocks_with_502() -> None:
    snap = step_snapshot(2)
    cfg = translate(snap, sleep_proxy(snap))
    routes = by_name(cfg.routes, "80")
    block = vhost(routes, "block_all")
    assert block.routes[0].name == "block_all"
    assert block.routes[0].direct_response.status == 502
    assert not block.routes[0].direct_response.HasField("body")
    assert "allow_any" not in [v.name for v in routes.virtual_hosts]
    outbound = by_name(cfg.listeners, "virtualOutbound")
    chains = {c.name: c for c in outbound.filter_chains}
    assert tcp_proxy(chains["PassthroughFilterChain"]).cluster == "BlackHoleCluster"


def test_step3_service_entry_gives_vhost_and_cluster() -> None:
    snap = step_snapshot(3)
    cfg = translate(snap, sleep_proxy(snap))
    vh = vhost(by_name(cfg.routes, "80"), "aliyun.com:80")
    assert "aliyun.com" in vh.domains and "aliyun.com:80" in vh.domains
    assert vh.routes[0].name == "default"
    assert vh.routes[0].route.cluster == "outbound|80||aliyun.com"
    assert vh.routes[0].route.retry_policy.num_retries.value == 2
    cluster = by_name(cfg.clusters, "outbound|80||aliyun.com")
    assert cluster.type == cluster_pb2.Cluster.STRICT_DNS
    assert cluster.dns_lookup_family == cluster_pb2.Cluster.V4_ONLY
    ep = cluster.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address
    assert (ep.address, ep.port_value) == ("aliyun.com", 80)


def test_step4_sidecar_routes_aliyun_to_gateway() -> None:
    snap = step_snapshot(4)
    cfg = translate(snap, sleep_proxy(snap))
    vh = vhost(by_name(cfg.routes, "80"), "aliyun.com:80")
    assert len(vh.routes) == 1  # the egress-gw route does not apply to sidecars
    assert vh.routes[0].route.cluster == f"outbound|80||{GW_HOST}"
    assert vh.routes[0].name == ""  # unnamed VirtualService route: logs "-"
    gw_cluster = by_name(cfg.clusters, f"outbound|80||{GW_HOST}")
    assert gw_cluster.type == cluster_pb2.Cluster.EDS
    cla = by_name(cfg.endpoints, f"outbound|80||{GW_HOST}")
    addr = cla.endpoints[0].lb_endpoints[0].endpoint.address.socket_address
    assert (addr.address, addr.port_value) == (GATEWAY_IP, 80)
    assert set(resource_names(cfg)[ROUTE]) == {"80"}


def test_step4_gateway_routes_to_aliyun() -> None:
    snap = step_snapshot(4)
    cfg = translate(snap, gateway_proxy(snap))
    assert names(cfg.listeners) == ["0.0.0.0_80"]
    listener = cfg.listeners[0]
    assert not listener.HasField("bind_to_port")  # binds for real
    manager = hcm(listener)
    assert manager.rds.route_config_name == "http.80"
    assert manager.use_remote_address.value is True
    assert manager.server_name == "istio-envoy"
    logger = stream_pb2.StdoutAccessLog()
    manager.access_log[0].typed_config.Unpack(logger)
    fmt = json_format.MessageToDict(logger.log_format.json_format)
    assert set(fmt) == set(ACCESS_LOG_FIELDS) and len(fmt) == 24
    assert fmt["upstream_cluster"] == "%UPSTREAM_CLUSTER_RAW%"
    routes = by_name(cfg.routes, "http.80")
    assert [v.name for v in routes.virtual_hosts] == ["aliyun.com:80"]
    assert list(routes.virtual_hosts[0].domains) == ["aliyun.com"]
    route = routes.virtual_hosts[0].routes[0]
    assert route.route.cluster == "outbound|80||aliyun.com"
    assert "outbound|80||aliyun.com" in names(cfg.clusters)


def test_gateway_without_virtual_service_is_blackhole() -> None:
    items = [r for r in step_resources(4) if r.kind != "VirtualService"]
    snap = Snapshot.build(items)
    cfg = translate(snap, gateway_proxy(snap))
    routes = by_name(cfg.routes, "http.80")
    assert [v.name for v in routes.virtual_hosts] == ["blackhole:80"]
    assert not routes.virtual_hosts[0].routes


def test_gateway_binds_service_target_port() -> None:
    items = [r for r in step_resources(4) if r.kind not in ("Service",) or r.name == "sleep"]
    items = [r for r in items if r.kind != "IstioGateway"]
    items += decode(
        """
apiVersion: v1
kind: Service
metadata: {name: istio-egressgateway, namespace: istio-system}
spec:
  selector: {app: istio-egressgateway, istio: egressgateway}
  ports: [{name: http2, port: 80, targetPort: 8080}]
"""
    )
    snap = Snapshot.build(items)
    cfg = translate(snap, gateway_proxy(snap))
    assert names(cfg.listeners) == ["0.0.0.0_8080"]
    assert hcm(cfg.listeners[0]).rds.route_config_name == "http.80"
    sidecar = translate(snap, sleep_proxy(snap))
    cla = by_name(sidecar.endpoints, f"outbound|80||{GW_HOST}")
    assert cla.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value == 8080


def test_sidecar_access_log_when_mesh_asks() -> None:
    items = step_resources(3) + decode(
        "apiVersion: meshgate.io/v1alpha1\nkind: MeshConfig\nmetadata: {name: default}\n"
        "spec: {accessLogFile: /dev/stdout, outboundTrafficPolicy: {mode: REGISTRY_ONLY}}"
    )
    snap = Snapshot.build(
        [r for r in items if not (r.kind == "MeshConfig" and not r.spec.access_log_file)]
    )
    cfg = translate(snap, sleep_proxy(snap))
    assert hcm(by_name(cfg.listeners, "0.0.0.0_80")).access_log


def test_output_is_deterministic() -> None:
    items = step_resources(4)
    first = translate(Snapshot.build(items), sleep_proxy(Snapshot.build(items)))
    shuffled = list(items)
    random.Random(3).shuffle(shuffled)
    snap = Snapshot.build(shuffled)
    second = translate(snap, sleep_proxy(snap))

    def dump(cfg: object) -> str:
        return json.dumps(
            {
                k: [json_format.MessageToDict(m) for m in v]
                for k, v in cfg.by_type().items()  # type: ignore[attr-defined]
            },
            sort_keys=True,
        )

    assert dump(first) == dump(second)
