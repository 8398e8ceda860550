"""Prometheus metrics from the access-log stream: Istio's names and labels, each request once,
the control plane's own figures read when scraped, bounded cardinality, a guarded /metrics."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from meshgate.telemetry import entries
from meshgate.telemetry.http import metrics_app, metrics_token, parse_addr
from meshgate.telemetry.metrics import Metrics, Sources, derive, destination
from meshgate.telemetry.sink import Counters
from meshgate.translate.accesslog import ACCESS_LOG_FIELDS

GW = entries.Reporter(
    "istio-egressgateway-abc-xyz", "istio-system", "gateway", "istio-egressgateway"
)
SLEEP = entries.Reporter("sleep-abc-xyz", "default", "sidecar", "sleep")
GW_ID = "spiffe://cluster.local/ns/istio-system/sa/istio-egressgateway-service-account"


def _entry(reporter: entries.Reporter = GW, n: int = 0, **fields: Any) -> entries.Entry:
    f: dict[str, Any] = dict.fromkeys(ACCESS_LOG_FIELDS)
    f.update(
        start_time=f"2025-12-06T05:46:40.{n % 1000:03d}Z",
        method="GET",
        protocol="HTTP/1.1",
        authority="aliyun.com",
        response_code=301,
        response_flags="-",
        duration=3,
        bytes_received=0,
        bytes_sent=120,
        upstream_cluster="outbound|80||aliyun.com",
        request_id=f"rid-{n}",
    )
    f.update(fields)
    return entries.Entry(reporter, f, "file")


def _sources(**kw: Any) -> Sources:
    return Sources(
        push_count=kw.get("push_count", lambda: 0),
        statuses=kw.get("statuses", list),
        accesslog=kw.get("accesslog", Counters),
    )


def _samples(m: Metrics) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for fam in text_string_to_metric_families(m.exposition().decode()):
        for s in fam.samples:
            out.setdefault(s.name, []).append(s)
    return out


def _value(m: Metrics, name: str, **labels: str) -> float:
    return sum(
        s.value
        for s in _samples(m).get(name, [])
        if all(s.labels.get(k) == v for k, v in labels.items())
    )


def test_gateway_request_is_reported_as_source_with_istio_s_labels() -> None:
    o = derive(_entry(), GW_ID)
    assert o.http and o.duration_ms == 3 and o.response_bytes == 120
    assert o.labels == {
        "reporter": "source",
        "source_workload": "istio-egressgateway",
        "source_workload_namespace": "istio-system",
        "source_principal": GW_ID,
        "destination_service": "aliyun.com",
        "destination_service_name": "aliyun.com",
        "request_protocol": "http",
        "response_code": "301",
        "response_flags": "-",
        "connection_security_policy": "unknown",
    }


def test_destination_service_of_each_kind_of_cluster() -> None:
    gw = "outbound|80||istio-egressgateway.istio-system.svc.cluster.local"
    assert destination(_entry(SLEEP, upstream_cluster=gw)) == (
        "istio-egressgateway.istio-system.svc.cluster.local",
        "istio-egressgateway",
    )
    assert destination(_entry(upstream_cluster="PassthroughCluster", authority="a.com:8080")) == (
        "a.com",
        "PassthroughCluster",
    )
    # REGISTRY_ONLY's 502 comes from the block_all route, with no cluster.
    blocked = _entry(SLEEP, upstream_cluster=None, route_name="block_all", response_code=502)
    assert destination(blocked) == ("aliyun.com", "BlackHoleCluster")
    tls = _entry(upstream_cluster=None, authority=None, requested_server_name="x.org")
    assert destination(tls) == ("x.org", "x.org")
    assert destination(_entry(upstream_cluster=None, authority=None)) == ("unknown", "unknown")


def test_inbound_is_destination_and_tcp_has_no_response_code() -> None:
    inbound = derive(
        _entry(SLEEP, upstream_cluster="inbound|80||", requested_server_name="outbound_.80_._.s"),
        None,
    )
    assert inbound.labels["reporter"] == "destination"
    assert inbound.labels["connection_security_policy"] == "mutual_tls"
    assert inbound.labels["source_principal"] == "unknown"
    tcp = derive(
        _entry(method=None, protocol=None, response_code=0, bytes_received=7, bytes_sent=9), None
    )
    assert not tcp.http and "response_code" not in tcp.labels
    assert tcp.labels["request_protocol"] == "tcp"
    assert (tcp.request_bytes, tcp.response_bytes) == (7, 9)


def test_each_entry_counts_once_in_the_scrape_2xx_3xx_5xx_apart() -> None:
    m = Metrics(_sources(), principal=lambda e: GW_ID if e.reporter is GW else None)
    new = [_entry(n=i) for i in range(5)]
    new += [_entry(n=10 + i, response_code=200) for i in range(2)]
    new += [_entry(SLEEP, n=20 + i, response_code=502, response_flags="-", upstream_cluster=None,
                   route_name="block_all") for i in range(3)]  # fmt: skip
    new.append(_entry(n=30, method=None, protocol=None, response_code=0, bytes_sent=50))
    m.on_entries(new)
    gw = {"reporter": "source", "source_workload": "istio-egressgateway"}
    assert _value(m, "istio_requests_total", **gw, response_code="301") == 5
    assert _value(m, "istio_requests_total", **gw, response_code="200") == 2
    assert _value(m, "istio_requests_total", source_workload="sleep", response_code="502") == 3
    assert _value(m, "istio_requests_total") == 10
    assert _value(m, "istio_request_duration_milliseconds_count", **gw) == 7
    assert _value(m, "istio_request_duration_milliseconds_sum", **gw) == 21
    assert _value(m, "istio_response_bytes_sum", **gw) == 840
    assert _value(m, "istio_request_bytes_count") == 10
    assert _value(m, "istio_tcp_connections_opened_total") == 1
    assert _value(m, "istio_tcp_connections_closed_total") == 1
    assert _value(m, "istio_tcp_sent_bytes_total") == 50
    sample = next(
        s for s in _samples(m)["istio_requests_total"] if s.labels["response_code"] == "301"
    )
    assert sample.labels["source_principal"] == GW_ID


def test_destination_services_beyond_the_bound_fold_into_other() -> None:
    m = Metrics(_sources(), max_services=2)
    m.on_entries([_entry(n=i, upstream_cluster=f"outbound|80||h{i}.com") for i in range(5)])
    services = {s.labels["destination_service"] for s in _samples(m)["istio_requests_total"]}
    assert services == {"h0.com", "h1.com", "other"}
    assert _value(m, "meshgate_metrics_folded_total") == 3


def test_control_plane_figures_are_read_when_scraped() -> None:
    nacked = SimpleNamespace(state="NACKED")
    synced = SimpleNamespace(state="SYNCED")
    statuses = [
        SimpleNamespace(node_id="router~1~gw.istio-system~x", connected=True,
                        types={"type.googleapis.com/envoy.config.listener.v3.Listener": nacked}),
        SimpleNamespace(node_id="sidecar~2~s.default~x", connected=True, types={"c": synced}),
        SimpleNamespace(node_id="sidecar~3~t.default~x", connected=False, types={"c": nacked}),
    ]  # fmt: skip
    counters = Counters(received_als=7, received_file=9, stored=8, dropped_queue_full=2)
    m = Metrics(
        _sources(push_count=lambda: 4, statuses=lambda: statuses, accesslog=lambda: counters)
    )
    m.on_store_events([SimpleNamespace(type="ADDED", key=SimpleNamespace(kind="ServiceEntry"))])
    m.timed(lambda a, b: a + b)(1, 2)
    assert _value(m, "meshgate_xds_pushes_total") == 4
    assert _value(m, "meshgate_xds_connected_proxies", proxy_type="router") == 1
    assert _value(m, "meshgate_xds_connected_proxies", proxy_type="sidecar") == 1
    assert _value(m, "meshgate_xds_rejected_configs", type="Listener") == 1
    assert _value(m, "meshgate_xds_rejected_configs") == 1  # the closed stream's is not counted
    assert _value(m, "meshgate_accesslog_entries_received_total", source="als") == 7
    assert _value(m, "meshgate_accesslog_entries_received_total", source="file") == 9
    assert _value(m, "meshgate_accesslog_entries_dropped_total") == 2
    assert _value(m, "meshgate_accesslog_entries_stored_total") == 8
    assert _value(m, "meshgate_store_writes_total", type="ADDED", kind="ServiceEntry") == 1
    assert _value(m, "meshgate_xds_push_generate_seconds_count") == 1


def _get(app: Any, headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "method": "GET", "path": "/metrics", "raw_path": b"/metrics",
        "query_string": b"", "headers": headers, "http_version": "1.1", "scheme": "http",
        "server": ("127.0.0.1", 1), "client": ("127.0.0.1", 2), "root_path": "",
    }  # fmt: skip
    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body


def test_metrics_endpoint_needs_the_metrics_token(tmp_path: Path) -> None:
    token = metrics_token(tmp_path)
    assert metrics_token(tmp_path) == token  # kept across restarts
    assert (tmp_path / "metrics-token").stat().st_mode & 0o777 == 0o600
    app = metrics_app(lambda: b"x 1\n", token)
    assert _get(app, [])[0] == 401
    assert _get(app, [(b"authorization", b"Bearer nope")])[0] == 401
    assert _get(app, [(b"authorization", f"Bearer {token}".encode())]) == (200, b"x 1\n")


def test_listen_address() -> None:
    assert parse_addr("127.0.0.1:15014") == ("127.0.0.1", 15014)
    assert parse_addr("[::1]:0") == ("::1", 0)
    for bad in ("15014", "host:", "h:99999", ":80"):
        with pytest.raises(ValueError):
            parse_addr(bad)
