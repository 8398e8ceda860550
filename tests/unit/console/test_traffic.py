"""The egress traffic page's figures and graph, from access-log entries; the SVG they make."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from meshgate.console import svg, traffic

NOW_MS = 1_800_000_000_000
GW_SVC = "outbound|80||istio-egressgateway.istio-system.svc.cluster.local"


def at(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def entry(ago_s: float, **fields: Any) -> dict[str, Any]:
    base = {
        "start_time": at(int(NOW_MS - ago_s * 1000)),
        "authority": "aliyun.com",
        "method": "HEAD",
        "protocol": "HTTP/1.1",
        "response_code": 301,
        "response_flags": "-",
        "duration": 5,
        "upstream_cluster": "outbound|80||aliyun.com",
        "reporter": "sidecar",
        "pod": "sleep-5d8f9c7b4d-abcde",
        "namespace": "default",
        "reason": None,
    }
    return {**base, **fields}


def test_series_buckets_requests_errors_and_latency_by_reporter() -> None:
    entries = [
        entry(5, duration=10),
        entry(5, duration=30),
        entry(
            5,
            reporter="gateway",
            pod="istio-egressgateway-7c9d8f6b5-xyz12",
            namespace="istio-system",
        ),
        entry(100, response_code=502, upstream_cluster=None, reason="REGISTRY_ONLY: no"),
        entry(10, upstream_cluster="inbound|80||"),  # mesh-internal: not a host
        entry(2000),  # outside the window
    ]
    (hs,) = traffic.series(entries, NOW_MS, 900, buckets=30)
    assert (hs.host, hs.requests, hs.errors) == ("aliyun.com", 4, 1)
    side = hs.by_reporter["sidecar"]
    assert side.requests[-1] == 2 and side.requests[-4] == 1
    assert side.errors[-4] == 1 and sum(side.errors) == 1
    assert side.latency[-1] == 10.0  # p50 of 10 and 30 by nearest rank
    assert side.latency[0] is None  # no request: a gap, not a zero
    assert sum(hs.by_reporter["gateway"].requests) == 1


def test_hosts_fall_back_to_sni_then_cluster() -> None:
    tls = entry(1, authority=None, method=None, protocol=None, requested_server_name="a.example")
    assert traffic.host_of(tls) == "a.example"
    bare = {**tls, "requested_server_name": None, "upstream_cluster": "outbound|443||b.example"}
    assert traffic.host_of(bare) == "b.example"
    assert traffic.host_of(entry(1, authority="aliyun.com:80")) == "aliyun.com"


def test_blocked_lists_refusals_newest_first_with_their_reason() -> None:
    rows = traffic.blocked(
        [
            entry(30, response_code=502, reason="REGISTRY_ONLY: no ServiceEntry for aliyun.com"),
            entry(10, response_code=403, reason="denied by AuthorizationPolicy istio-system/x"),
            entry(5),
        ]
    )
    assert [(b.code, b.reason.split(":")[0]) for b in rows] == [
        (403, "denied by AuthorizationPolicy istio-system/x"),
        (502, "REGISTRY_ONLY"),
    ]


def test_graph_goes_workload_to_gateway_to_host() -> None:
    gw = {"reporter": "gateway", "pod": "istio-egressgateway-7c9d8f6b5-xyz12"}
    entries = [
        entry(5, upstream_cluster=GW_SVC),
        entry(5, upstream_cluster=GW_SVC),
        entry(5, namespace="istio-system", **gw),
        entry(5, response_code=502, upstream_cluster=None, reason="REGISTRY_ONLY"),
        entry(5, authority="other.example", upstream_cluster="PassthroughCluster"),
    ]
    g = traffic.graph(entries, ["istio-system/idle-gateway"])
    assert g.workloads == ["default/sleep"]
    assert g.gateways == ["istio-system/idle-gateway", "istio-system/istio-egressgateway"]
    assert g.hosts == ["aliyun.com", "other.example"]
    edges = {(e.source, e.target): (e.requests, e.errors) for e in g.edges}
    assert edges == {
        ("w:default/sleep", "g:istio-system/istio-egressgateway"): (2, 0),
        ("g:istio-system/istio-egressgateway", "h:aliyun.com"): (1, 0),
        ("w:default/sleep", "h:aliyun.com"): (1, 1),
        ("w:default/sleep", "h:other.example"): (1, 0),
    }
    drawn = svg.graph_svg(g)
    assert 'data-node="h:aliyun.com"' in drawn and "2 req" in drawn and "1 req, 1 err" in drawn


def test_svg_escapes_what_came_from_the_mesh() -> None:
    hostile = "<script>alert(1)</script>"
    g = traffic.graph([entry(1, authority=hostile)], [])
    drawn = svg.graph_svg(g)
    assert "<script>" not in drawn and "&lt;script&gt;" in drawn
    chart = svg.line_chart(hostile, {hostile: [1.0, None, 2.0]})
    assert "<script>" not in chart and chart.count("<polyline") == 0  # two lone points
    assert chart.count("<circle") == 2
