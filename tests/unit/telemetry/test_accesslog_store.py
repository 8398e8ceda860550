"""The mesh-wide access log: one row per request whichever source brings it first, the
proxy's own line winning; ALS entries converted to the JSON line's values; bounded."""

from __future__ import annotations

from pathlib import Path

import pytest
from envoy.data.accesslog.v3 import accesslog_pb2 as al

from meshgate.telemetry import entries
from meshgate.telemetry.store import AccessLogStore, Query, connect, query, status_range
from meshgate.translate.accesslog import ACCESS_LOG_FIELDS

GW = entries.Reporter(
    "istio-egressgateway-abc12-xyz9", "istio-system", "gateway", "istio-egressgateway"
)


def _http() -> al.HTTPAccessLogEntry:
    e = al.HTTPAccessLogEntry(protocol_version=al.HTTPAccessLogEntry.HTTP11)
    c = e.common_properties
    c.start_time.FromMilliseconds(1_765_000_000_123)
    c.downstream_remote_address.socket_address.address = "10.34.0.10"
    c.downstream_remote_address.socket_address.port_value = 43396
    c.downstream_local_address.socket_address.address = "10.34.0.11"
    c.downstream_local_address.socket_address.port_value = 80
    c.upstream_cluster = "outbound|80||aliyun.com"
    c.duration.FromMilliseconds(3)
    e.request.authority = "aliyun.com"
    e.request.request_id = "rid-1"
    e.request.request_method = 2  # HEAD
    e.request.path = "/"
    e.response.response_code.value = 301
    e.response.response_headers["x-envoy-upstream-service-time"] = "1"
    return e


def test_als_entry_has_the_line_s_keys_and_values() -> None:
    entry = entries.from_http(_http(), GW)
    assert set(entry.fields) == set(ACCESS_LOG_FIELDS)
    f = entry.fields
    assert f["start_time"] == "2025-12-06T05:46:40.123Z"
    assert f["method"] == "HEAD" and f["protocol"] == "HTTP/1.1" and f["response_code"] == 301
    assert f["response_flags"] == "-" and f["upstream_service_time"] == "1"
    assert f["istio_policy_status"] is None and f["duration"] == 3


def test_same_request_from_both_sources_is_stored_once_and_the_line_wins(tmp_path: Path) -> None:
    store = AccessLogStore(tmp_path / "a.db", max_bytes=10**8, max_age=3600)
    als = entries.from_http(_http(), GW)
    line = dict(als.fields, user_agent="curl/7.88.1")
    import json

    from_file = entries.from_line(json.dumps(line), GW)
    assert from_file is not None and from_file.key == als.key
    assert store.add([als], now=1000.0) == [als]
    assert store.add([from_file], now=1001.0) == []
    rows = query(connect(tmp_path / "a.db"), Query(workload="istio-egressgateway"))
    assert len(rows) == 1 and rows[0][1]["user_agent"] == "curl/7.88.1"
    assert rows[0][1]["pod"] == GW.pod and rows[0][1]["reporter"] == "gateway"
    # Bounded by age.
    assert store.prune(now=1000.0 + 3601) == 1


def test_status_classes() -> None:
    assert status_range("5xx") == (500, 599) and status_range("403") == (403, 403)
    with pytest.raises(ValueError):
        status_range("5x")


def test_workload_is_the_pod_name_without_its_hashes() -> None:
    labels = {"pod-template-hash": "kpkj6s44k6"}
    assert entries.workload_of("istio-egressgateway-kpkj6s44k6-2txnb", labels) == (
        "istio-egressgateway"
    )
    assert entries.workload_of("outsider", {}) == "outsider"


def test_backfill_keeps_the_seed_lines_and_skips_text_and_custom_formats(tmp_path: Path) -> None:
    """Under accessLogEncoding TEXT (or a JSON format of other keys) the proxy's own lines
    are not the seed's: the backfill passes them over, and the stream still brings them."""
    import json

    from meshgate.telemetry.sink import Sink

    seed = dict(entries.from_http(_http(), GW).fields, request_id="rid-file")
    text = (
        '[2025-12-06T05:46:40.123Z] "GET / HTTP/1.1" 301 - via_upstream - "-" 0 0 3 1 "-" '
        '"curl/8.5.0" "rid-text" "aliyun.com" "1.2.3.4:80" outbound|80||aliyun.com '
        "10.34.0.10:40000 10.34.0.11:80 10.34.0.10:43396 - default"
    )
    log = tmp_path / "istio-proxy.log"
    lines = [text, json.dumps({"code": 301, "host": "1.2.3.4:80"}), json.dumps(seed), "{not json"]
    log.write_text("\n".join(lines) + "\n")
    store = AccessLogStore(tmp_path / "a.db", max_bytes=10**8, max_age=3600)
    sink = Sink(store, lambda: [(GW, log)])
    sink.flush()
    assert sink.counters.received_file == 1
    rows = query(connect(tmp_path / "a.db"), Query(workload="istio-egressgateway"))
    assert [r[1]["request_id"] for r in rows] == ["rid-file"]
    sink.offer([entries.from_http(_http(), GW)])  # the text line's request, streamed
    sink.flush()
    rows = query(connect(tmp_path / "a.db"), Query(workload="istio-egressgateway"))
    assert sorted(r[1]["request_id"] for r in rows) == ["rid-1", "rid-file"]
    store.close()
