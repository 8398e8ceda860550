"""Node ids in Istio's form and their parsing."""

from __future__ import annotations

from meshgate.model.proxy import NodeId, Proxy, parse_node_id


def test_node_id_round_trip() -> None:
    proxy = Proxy("sidecar", "10.34.0.5", "sleep-x", "default")
    assert proxy.node_id == "sidecar~10.34.0.5~sleep-x.default~default.svc.cluster.local"
    assert parse_node_id(proxy.node_id) == NodeId("sidecar", "10.34.0.5", "sleep-x", "default")
    router = Proxy("router", "10.34.0.6", "gw.v1-abc", "istio-system")
    assert parse_node_id(router.node_id) == NodeId(
        "router", "10.34.0.6", "gw.v1-abc", "istio-system"
    )


def test_bad_node_ids() -> None:
    assert parse_node_id("") is None
    assert parse_node_id("ingress~1.2.3.4~a.b~b.svc.cluster.local") is None
    assert parse_node_id("sidecar~1.2.3.4~nodots~x.svc.cluster.local") is None
    assert parse_node_id("sidecar~1.2.3.4~a.b~c.svc.cluster.local") is None
