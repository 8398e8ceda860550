"""``proxy-status``: istioctl's columns and each type's state, from the control plane's records."""

from __future__ import annotations

from typing import Any

from meshgate.cli import proxy_status as ps

CDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
LDS = "type.googleapis.com/envoy.config.listener.v3.Listener"
EDS = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
RDS = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
SDS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"


def proxy(name: str, types: dict[str, dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "nodeId": f"sidecar~10.0.0.5~{name}~default.svc.cluster.local",
        "connected": True,
        "mode": "sotw",
        "metadata": {"NAMESPACE": "default"},
        "types": types,
        **extra,
    }


def test_columns_are_istioctls_then_mode_and_errors() -> None:
    synced = {"state": "SYNCED"}
    proxies = [
        proxy(
            "sleep-abc.default",
            {CDS: synced, LDS: {"state": "STALE"}, EDS: synced, SDS: synced},
            mode="delta",
        ),
        proxy(
            "istio-egressgateway-1.istio-system",
            {CDS: synced, LDS: {"state": "NACKED", "nackError": "bad listener"}, RDS: synced},
            metadata={"CLUSTER_ID": "east"},
        ),
    ]
    lines = ps.format_rows(ps.status_rows(proxies, "meshgate-0a1b2c", "0.1.0"))
    # Aligned columns, 5 spaces apart at the least (istioctl's tabwriter padding).
    assert lines[0].index("CDS") == lines[1].index("SYNCED")
    assert "SYNCED     NACKED     NOT SENT" in lines[1]
    rows = [line.split() for line in lines]
    assert rows[0] == ["NAME", "CLUSTER", "CDS", "LDS", "EDS", "RDS", "ECDS", "ISTIOD",
                       "VERSION", "MODE", "ERRORS"]  # fmt: skip
    # Sorted by name, as istioctl sorts by proxy id; a type never sent reads NOT SENT.
    assert " ".join(rows[1]) == (
        "istio-egressgateway-1.istio-system east SYNCED NACKED NOT SENT SYNCED NOT SENT "
        "meshgate-0a1b2c 0.1.0 sotw LDS: bad listener"
    )
    assert " ".join(rows[2]) == (
        "sleep-abc.default Kubernetes SYNCED STALE SYNCED NOT SENT NOT SENT "
        "meshgate-0a1b2c 0.1.0 delta <none>"
    )


def test_a_closed_stream_is_disconnected_for_every_type() -> None:
    gone = {"state": "DISCONNECTED"}
    rows = ps.status_rows(
        [proxy("sleep-abc.default", {CDS: gone, LDS: gone}, connected=False)], "meshgate-x", "1"
    )
    assert rows[1][2:7] == ["DISCONNECTED"] * 5


def test_detail_names_the_control_plane_and_each_type() -> None:
    p = proxy(
        "sleep-abc.default",
        {
            SDS: {"state": "STALE", "sentVersion": "3", "missingNames": ["kubernetes://cred"]},
            CDS: {"state": "SYNCED", "sentVersion": "3", "ackedVersion": "3", "resourceCount": 4},
        },
        connectedSince="2026-01-01T00:00:00",
    )
    lines = ps.detail_lines(p, "meshgate-0a1b2c", "0.1.0")
    assert lines[:5] == [
        "Proxy:      sleep-abc.default",
        "Node ID:    sidecar~10.0.0.5~sleep-abc.default~default.svc.cluster.local",
        "Connected:  yes (since 2026-01-01T00:00:00)",
        "Cluster:    Kubernetes",
        "Istiod:     meshgate-0a1b2c (meshgate 0.1.0)",
    ]
    table = [line.split() for line in lines[6:]]
    assert table == [
        ["TYPE", "STATE", "SENT", "ACKED", "RESOURCES", "MISSING", "REJECTED"],
        ["CDS", "SYNCED", "3", "3", "4", "-", "-"],
        ["SDS", "STALE", "3", "-", "0", "kubernetes://cred", "-"],
    ]
