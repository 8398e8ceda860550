"""``meshgate top``'s aggregation: fake entries in a temporary access-log store, rows by host,
reporter and protocol, errors as the module's rule counts them, rates over the window,
nearest-rank percentiles, inbound entries left out, the window and the filters applied."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from meshgate.telemetry import entries, top
from meshgate.telemetry.store import AccessLogStore, connect
from meshgate.translate.accesslog import ACCESS_LOG_FIELDS

NOW = 1_765_000_000.0
GW = entries.Reporter(
    "istio-egressgateway-abc-x1", "istio-system", "gateway", "istio-egressgateway"
)
GW2 = entries.Reporter(
    "istio-egressgateway-abc-x2", "istio-system", "gateway", "istio-egressgateway"
)
OTHER_GW = entries.Reporter("other-gw-abc-y1", "edge", "gateway", "other-gw")
SLEEP = entries.Reporter("sleep-abc-z1", "default", "sidecar", "sleep")

_seq = iter(range(1_000_000))


def http(
    reporter: entries.Reporter,
    authority: str,
    code: int,
    duration: int,
    *,
    ago: float = 1.0,
    cluster: str | None = None,
    reason: str | None = None,
    route: str | None = None,
) -> entries.Entry:
    n = next(_seq)
    when = datetime.fromtimestamp(NOW - ago, UTC)
    f: dict[str, Any] = dict.fromkeys(ACCESS_LOG_FIELDS)
    f.update(
        start_time=when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z",
        authority=authority, method="GET", protocol="HTTP/1.1", response_code=code,
        duration=duration, response_flags="-", route_name=route,
        upstream_cluster=cluster or f"outbound|80||{authority.split(':')[0]}",
        downstream_remote_address=f"10.34.0.10:{40000 + n}", request_id=f"rid-{n}",
        downstream_local_address="198.51.100.10:80", istio_policy_status=reason,
    )  # fmt: skip
    return entries.Entry(reporter, f, "file")


def tcp(
    reporter: entries.Reporter, sni: str | None, flags: str, duration: int, dialed: str
) -> entries.Entry:
    n = next(_seq)
    when = datetime.fromtimestamp(NOW - 2, UTC)
    f: dict[str, Any] = dict.fromkeys(ACCESS_LOG_FIELDS)
    f.update(
        start_time=when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z",
        requested_server_name=sni, response_code=0, duration=duration, response_flags=flags,
        upstream_cluster="PassthroughCluster", downstream_remote_address=f"10.34.0.10:{n}",
        downstream_local_address=dialed,
    )  # fmt: skip
    return entries.Entry(reporter, f, "file")


@pytest.fixture
def store(tmp_path: Path) -> Any:
    s = AccessLogStore(tmp_path / "a.db", max_bytes=10**9, max_age=10**9)
    yield s, connect(tmp_path / "a.db")
    s.close()


def rows(store: Any, **query: Any) -> dict[tuple[str, str, str], top.HostRow]:
    _, conn = store
    q = top.TopQuery(window=query.pop("window", 60.0), **query)
    return {(r.host, r.reporter, r.protocol): r for r in top.top_hosts(conn, q, NOW)}


def test_requests_errors_rates_and_percentiles_per_host_and_reporter(store: Any) -> None:
    writer, conn = store
    ok = [http(GW if i % 2 else GW2, "aliyun.com", 301, d) for i, d in enumerate(range(1, 101))]
    refused = [
        http(SLEEP, "aliyun.com", 502, 0, cluster="BlackHoleCluster", route="block_all"),
        http(SLEEP, "aliyun.com:80", 502, 0, cluster="BlackHoleCluster", route="block_all"),
    ]
    via_gw = [
        http(SLEEP, "aliyun.com", 301, 5, cluster="outbound|80||istio-egressgateway.istio-system"
             ".svc.cluster.local")
        for _ in range(6)
    ]  # fmt: skip
    denied = http(GW, "edition.cnn.com", 403, 1, reason="RBAC: access denied")
    writer.add([*ok, *refused, *via_gw, denied], now=NOW)

    got = rows(store)
    gw = got[("aliyun.com", "gateway", "http")]
    # Both replicas' requests, each once, in one row: the gateway's name, not its pods.
    assert (gw.requests, gw.errors, gw.error_rate) == (100, 0, 0.0)
    assert gw.rate == pytest.approx(100 / 60)
    assert (gw.p50_ms, gw.p99_ms) == (50.0, 99.0)
    # The sidecar's refusals keep the host it refused (authority without its port), and
    # its hop to the gateway is named by what the client asked for.
    sc = got[("aliyun.com", "sidecar", "http")]
    assert (sc.requests, sc.errors) == (8, 2) and sc.error_rate == pytest.approx(0.25)
    assert (sc.p50_ms, sc.p99_ms) == (5.0, 5.0)
    cnn = got[("edition.cnn.com", "gateway", "http")]
    assert (cnn.requests, cnn.errors) == (1, 1)
    # Busiest first.
    order = [(r.host, r.reporter) for r in top.top_hosts(conn, top.TopQuery(60.0), NOW)]
    assert order == [
        ("aliyun.com", "gateway"), ("aliyun.com", "sidecar"), ("edition.cnn.com", "gateway")
    ]  # fmt: skip
    assert gw.to_json() == {
        "host": "aliyun.com", "reporter": "gateway", "protocol": "http", "requests": 100,
        "errors": 0, "requestsPerSecond": 1.6667, "errorRate": 0.0, "p50Ms": 50.0, "p99Ms": 99.0,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("code", "reason", "error"),
    [(200, None, False), (301, None, False), (404, None, False), (403, None, True),
     (500, None, True), (502, None, True), (503, None, True), (0, None, True),
     (200, "some refusal", True)],
)  # fmt: skip
def test_http_errors_are_5xx_403_no_response_and_refusals(
    code: int, reason: str | None, error: bool
) -> None:
    assert top.is_error(True, code, "-", reason) is error


def test_tcp_is_grouped_by_sni_then_dialed_address_and_fails_on_failure_flags(store: Any) -> None:
    writer, _ = store
    writer.add(
        [
            tcp(SLEEP, "aliyun.com", "-", 40, "198.51.100.10:443"),
            tcp(SLEEP, "aliyun.com", "UF,URX", 3, "198.51.100.10:443"),
            tcp(SLEEP, None, "UH", 0, "203.0.113.9:5432"),
            tcp(SLEEP, None, "DC", 7, "203.0.113.9:5432"),
        ],
        now=NOW,
    )
    got = rows(store)
    sni = got[("aliyun.com", "sidecar", "tcp")]
    assert (sni.requests, sni.errors, sni.p99_ms) == (2, 1, 40.0)
    addr = got[("203.0.113.9:5432", "sidecar", "tcp")]
    assert (addr.requests, addr.errors) == (2, 1)  # DC: the client closed, not a failure


def test_window_filters_and_inbound_entries(store: Any) -> None:
    writer, _ = store
    writer.add(
        [
            http(GW, "aliyun.com", 301, 1, ago=30),
            http(GW, "aliyun.com", 301, 1, ago=300),  # outside a 1m window
            http(OTHER_GW, "aliyun.com", 301, 1),
            http(SLEEP, "aliyun.com", 301, 1),
            http(SLEEP, "sleep.default.svc.cluster.local", 200, 1, cluster="inbound|80||"),
        ],
        now=NOW,
    )
    assert rows(store)[("aliyun.com", "gateway", "http")].requests == 2
    assert rows(store, window=600.0)[("aliyun.com", "gateway", "http")].requests == 3
    # A sidecar's inbound view of a mesh-internal call is no external host.
    assert "sleep.default.svc.cluster.local" not in {h for h, _, _ in rows(store)}
    only_gw = rows(store, gateway="istio-egressgateway")
    assert list(only_gw) == [("aliyun.com", "gateway", "http")]
    assert only_gw[("aliyun.com", "gateway", "http")].requests == 1
    assert list(rows(store, namespace="default")) == [("aliyun.com", "sidecar", "http")]
    assert list(rows(store, reporter="sidecar")) == [("aliyun.com", "sidecar", "http")]
    assert rows(store, namespace="nowhere") == {}


def test_parameters_are_checked() -> None:
    assert top.parse_params({}) == top.TopQuery(60.0)
    q = top.parse_params({"window": "300", "namespace": "istio-system", "reporter": "gateway"})
    assert q == top.TopQuery(300.0, "istio-system", None, "gateway")
    for bad in ({"window": "0"}, {"window": "abc"}, {"window": "1e9"}, {"reporter": "pod"}):
        with pytest.raises(ValueError):
            top.parse_params(bad)


def test_percentile_is_nearest_rank() -> None:
    assert top.percentile([7.0], 99) == 7.0
    assert top.percentile([1.0, 2.0], 50) == 1.0
    assert top.percentile([float(i) for i in range(1, 11)], 99) == 10.0
    assert top.percentile([float(i) for i in range(1, 11)], 50) == 5.0
