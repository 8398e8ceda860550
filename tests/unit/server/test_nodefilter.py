"""The node filter's inputs from the store: pods with IPs, gateways, namespaces, settings."""

from __future__ import annotations

from typing import Any

from meshgate.server import nodefilter
from meshgate.server import workloads as wl

Obj = dict[str, Any]


def pod(name: str, ns: str = "default", ip: str | None = "10.34.0.20", **meta: Any) -> Obj:
    containers = meta.pop(
        "containers", [{"name": "app", "ports": [{"name": "http", "containerPort": 8080}]}]
    )
    out: Obj = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, **meta},
        "spec": {"containers": containers},
    }
    if ip:
        out["status"] = {"podIP": ip}
    return out


ROUTER = {wl.ROUTER_ANNOTATION: "router"}
PROXY_ONLY = [{"name": wl.PROXY_CONTAINER, "ports": [{"containerPort": 80}]}]


def test_gateways_are_routers_running_only_their_proxy() -> None:
    gw = pod("gw", "istio-system", annotations=ROUTER, containers=PROXY_ONLY)
    sneaky = pod("x", annotations=ROUTER, containers=[*PROXY_ONLY, {"name": "app"}])
    plain = pod("y", containers=PROXY_ONLY)
    assert nodefilter.is_gateway(gw)
    assert not nodefilter.is_gateway(sneaky)
    assert not nodefilter.is_gateway(plain)


def test_inputs() -> None:
    objs = [
        pod("web", labels={"app": "web"}),
        pod("pending", ip=None),
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "istio-system", "labels": {"istio": "system"}},
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "deny", "namespace": "default"},
            "spec": {"podSelector": {}},
        },
        {
            "apiVersion": "meshgate.io/v1alpha1",
            "kind": "MeshConfig",
            "metadata": {"name": "default"},
            "spec": {"egressEnforcement": "GATEWAY_ONLY"},
        },
    ]
    got = nodefilter.inputs(objs)
    assert [p.name for p in got.pods] == ["web"]
    (web,) = got.pods
    assert (web.ip, dict(web.labels), web.gateway) == ("10.34.0.20", {"app": "web"}, False)
    assert [(p.name, p.port, p.protocol) for p in web.ports] == [("http", 8080, "TCP")]
    assert got.namespaces == {"istio-system": {"istio": "system"}}
    assert [(p.namespace, p.name) for p in got.policies] == [("default", "deny")]
    assert got.gateway_only
    assert not nodefilter.inputs(objs[:-1]).gateway_only  # OFF unless the MeshConfig says so


def test_other_nodes_pod_ranges_are_inside_the_mesh_for_the_exit() -> None:
    gateway_only = {
        "apiVersion": "meshgate.io/v1alpha1",
        "kind": "MeshConfig",
        "metadata": {"name": "default"},
        "spec": {"egressEnforcement": "GATEWAY_ONLY"},
    }
    node2 = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n2"}}
    node2["spec"] = {"podCIDR": "10.35.0.0/16"}
    alone = nodefilter.render([pod("web"), gateway_only])
    assert "-A MESHGATE-EXIT -d" not in alone  # one node: the rules as they always were
    first = nodefilter.render([pod("web"), gateway_only, node2])
    assert "-A MESHGATE-EXIT -d 10.35.0.0/16" in first
    second = nodefilter.render([pod("web"), gateway_only, node2], "10.35.0.0/16", "10.35.0.1")
    assert "-A MESHGATE-EXIT -d 10.34.0.0/16" in second
    assert "-A MESHGATE-EXIT -d 10.35.0.0/16" not in second
