"""Kind-specific columns read the wire dict as kubectl's printers do."""

from __future__ import annotations

from meshgate.cli.columns import columns_for


def _row(group: str, kind: str, obj: dict[str, object], wide: bool = False) -> dict[str, str]:
    return {c.header: c.value(obj) for c in columns_for(group, kind, wide)}


def test_service_entry_columns() -> None:
    obj = {
        "metadata": {"name": "se"},
        "spec": {"hosts": ["aliyun.com", "b.com"], "location": "MESH_EXTERNAL"},
    }
    row = _row("networking.istio.io", "ServiceEntry", obj)
    assert list(row) == ["NAME", "HOSTS", "LOCATION", "RESOLUTION", "AGE"]
    assert row["HOSTS"] == '["aliyun.com","b.com"]'
    assert row["RESOLUTION"] == "<none>"
    assert row["AGE"] == "<unknown>"


def test_pod_columns_and_wide() -> None:
    pod = {
        "metadata": {"name": "sleep-1"},
        "spec": {"containers": [{"name": "sleep"}, {"name": "istio-proxy"}], "nodeName": "n1"},
        "status": {
            "phase": "Running",
            "podIP": "10.0.0.5",
            "containerStatuses": [{"ready": True, "restartCount": 1}, {"ready": False}],
        },
    }
    row = _row("", "Pod", pod, wide=True)
    assert list(row) == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]
    assert (row["READY"], row["STATUS"], row["RESTARTS"]) == ("1/2", "Running", "1")
    assert (row["IP"], row["NODE"]) == ("10.0.0.5", "n1")


def test_service_deployment_meshconfig() -> None:
    svc = {"spec": {"clusterIP": "10.96.0.10", "ports": [{"port": 80}]}}
    row = _row("", "Service", svc)
    assert row["TYPE"] == "ClusterIP"
    assert row["PORT(S)"] == "80/TCP"
    assert row["EXTERNAL-IP"] == "<none>"
    dep = {"spec": {"replicas": 2}, "status": {"readyReplicas": 1, "availableReplicas": 1}}
    row = _row("apps", "Deployment", dep)
    assert (row["READY"], row["UP-TO-DATE"], row["AVAILABLE"]) == ("1/2", "0", "1")
    mc = {"spec": {"outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}}}
    assert _row("meshgate.io", "MeshConfig", mc)["MODE"] == "REGISTRY_ONLY"
    # A fresh mesh's MeshConfig sets no mode: the column shows the one in force.
    for fresh in ({"spec": {}}, {"spec": {"outboundTrafficPolicy": {}}}, {}):
        assert _row("meshgate.io", "MeshConfig", fresh)["MODE"] == "ALLOW_ANY"
        assert _row("meshgate.io", "MeshConfig", fresh)["EGRESS-ENFORCEMENT"] == "OFF"
    gated = {"spec": {"egressEnforcement": "GATEWAY_ONLY"}}
    assert _row("meshgate.io", "MeshConfig", gated)["EGRESS-ENFORCEMENT"] == "GATEWAY_ONLY"


def test_network_policy_pod_selector_as_kubectl_shows_it() -> None:
    def shown(selector: dict[str, object]) -> str:
        return _row("networking.k8s.io", "NetworkPolicy", {"spec": {"podSelector": selector}})[
            "POD-SELECTOR"
        ]

    assert shown({}) == "<none>"
    assert shown({"matchLabels": {"app": "sleep", "a": "b"}}) == "a=b,app=sleep"
    exprs = [
        {"key": "tier", "operator": "In", "values": ["web", "api"]},
        {"key": "x", "operator": "Exists"},
        {"key": "y", "operator": "DoesNotExist"},
    ]
    assert shown({"matchExpressions": exprs}) == "tier in (web,api),x,!y"


def test_unknown_kind_has_name_and_age() -> None:
    assert list(_row("x.io", "Thing", {})) == ["NAME", "AGE"]


def test_external_name_service_shows_its_target_as_kubectl_does() -> None:
    svc = {"spec": {"type": "ExternalName", "externalName": "httpbin.org", "ports": [{"port": 80}]}}
    row = _row("", "Service", svc)
    assert (row["TYPE"], row["CLUSTER-IP"], row["EXTERNAL-IP"]) == (
        "ExternalName",
        "<none>",
        "httpbin.org",
    )
