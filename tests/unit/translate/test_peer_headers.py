"""Headers Istio's sidecars send upstream: the route's decorator (as
x-envoy-decorator-operation, which Envoy only sends with tracing on in the HCM) and the
metadata exchange's x-envoy-peer-metadata / x-envoy-peer-metadata-id."""

from __future__ import annotations

import base64
from typing import Any

from envoy.config.core.v3 import base_pb2
from google.protobuf import json_format, struct_pb2
from tests.golden.envoyconf import by_name, hcm, vhost
from tests.golden.seedworld import (
    decode,
    gateway_proxy,
    sleep_proxy,
    step_resources,
    step_snapshot,
)

from meshgate.model.proxy import Proxy
from meshgate.model.snapshot import Snapshot
from meshgate.translate import translate
from meshgate.translate.peer_metadata import encoded, workload

GW_HOST = "istio-egressgateway.istio-system.svc.cluster.local"


def _headers(option_list: Any) -> dict[str, tuple[str, int]]:
    return {o.header.key: (o.header.value, o.append_action) for o in option_list}


def test_sidecar_and_gateway_hcms_trace_without_a_provider() -> None:
    snap = step_snapshot(4)
    for proxy, listener in ((sleep_proxy(snap), "0.0.0.0_80"), (gateway_proxy(snap), "0.0.0.0_80")):
        manager = hcm(by_name(translate(snap, proxy).listeners, listener))
        assert manager.HasField("tracing"), proxy.node_id
        assert not manager.tracing.HasField("provider")
        assert manager.tracing.random_sampling.value == 0


def test_sidecar_routes_carry_peer_metadata_of_the_pod() -> None:
    snap = step_snapshot(3)
    proxy = sleep_proxy(snap)
    routes = by_name(translate(snap, proxy).routes, "80")
    added = _headers(routes.request_headers_to_add)
    overwrite = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
    assert added["x-envoy-peer-metadata-id"] == (proxy.node_id, overwrite)
    value, action = added["x-envoy-peer-metadata"]
    assert action == overwrite
    node = struct_pb2.Struct()
    node.ParseFromString(base64.b64decode(value))
    meta = json_format.MessageToDict(node)
    assert meta["NAME"] == proxy.pod
    assert meta["NAMESPACE"] == "default"
    assert meta["LABELS"] == {"app": "sleep"}
    assert meta["SERVICE_ACCOUNT"] == "sleep"
    assert meta["INSTANCE_IPS"] == proxy.ip
    assert meta["MESH_ID"] == "cluster.local"
    # The same proxy always sends the same bytes (no churn in pushes).
    assert encoded(proxy) == value


def test_workload_name_comes_from_the_deployment_of_the_pod() -> None:
    deployed = Proxy(
        "sidecar", "10.34.0.9", "sleep-6f8cb8f5d4-x7k2p", "ns1", {"pod-template-hash": "6f8cb8f5d4"}
    )
    assert workload(deployed) == (
        "sleep",
        "kubernetes://apis/apps/v1/namespaces/ns1/deployments/sleep",
    )
    bare = Proxy("sidecar", "10.34.0.9", "solo", "ns1")
    assert workload(bare) == ("solo", "kubernetes://apis/v1/namespaces/ns1/pods/solo")


def test_decorator_names_the_one_destination_else_the_virtual_service() -> None:
    # Istio's getRouteOperation: one cluster -> its host:port; weighted -> VS name.
    snap = step_snapshot(4)
    mesh_route = vhost(by_name(translate(snap, sleep_proxy(snap)).routes, "80"), "aliyun.com:80")
    assert mesh_route.routes[0].decorator.operation == f"{GW_HOST}:80/*"

    weighted = decode(
        """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: se}
spec:
  hosts: [a.example.org]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: split}
spec:
  hosts: [a.example.org]
  http:
  - match: [{uri: {prefix: /api}}]
    route:
    - {destination: {host: a.example.org}, weight: 50}
    - {destination: {host: a.example.org}, weight: 50}
  - match: [{uri: {exact: /x}}]
    route:
    - destination: {host: a.example.org}
"""
    )
    snap2 = Snapshot.build([*step_resources(1), *weighted])
    routes = vhost(by_name(translate(snap2, sleep_proxy(snap2)).routes, "80"), "a.example.org:80")
    assert [r.decorator.operation for r in routes.routes] == [
        "split:80/api*",
        "a.example.org:80/x",
    ]
