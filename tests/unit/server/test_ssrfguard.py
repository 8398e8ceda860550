"""Which addresses a gateway pod's SSRF guard lets through: only what its config names."""

from __future__ import annotations

from tests.golden.seedworld import GATEWAY_IP, gateway_proxy, step_snapshot

from meshgate.server.ssrfguard import allowed_destinations, gateway_pods


def test_a_name_resolved_by_dns_allows_nothing() -> None:
    snap = step_snapshot(4)  # the seed: the gateway routes to aliyun.com, a DNS cluster
    proxy = gateway_proxy(snap)
    assert allowed_destinations(snap, proxy.namespace, proxy.pod, GATEWAY_IP) == []


def test_an_unknown_pod_allows_nothing() -> None:
    assert allowed_destinations(step_snapshot(4), "istio-system", "gone", "10.34.0.99") == []


def test_gateway_pods_are_router_pods_with_an_ip() -> None:
    router = {"meshgate.io/proxy-type": "router"}
    objs = [
        {
            "kind": "Pod",
            "metadata": {"name": "gw", "namespace": "istio-system", "uid": "u1",
                         "annotations": router},
            "status": {"podIP": "10.34.0.6"},
        },
        {"kind": "Pod", "metadata": {"name": "starting", "annotations": router}, "status": {}},
        {"kind": "Pod", "metadata": {"name": "app"}, "status": {"podIP": "10.34.0.7"}},
    ]  # fmt: skip
    assert gateway_pods(objs) == [("istio-system", "gw", "u1", "10.34.0.6")]
