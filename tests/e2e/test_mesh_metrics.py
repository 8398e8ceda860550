"""Prometheus metrics on a real mesh: the /metrics URL that ``meshgate status`` names parses
with prometheus_client's parser, needs its token, and counts exactly the requests the sleep
pod sent, each once, per reporter: the sidecar's outbound and the egress gateway's, 3xx
(the seed's 301 through the gateway) and 5xx (REGISTRY_ONLY's 502) apart."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.meshctl import WALKTHROUGH, Mesh, retry

pytestmark = pytest.mark.e2e

OK, FAILED = 12, 5
GATEWAY_SVC = "istio-egressgateway.istio-system.svc.cluster.local"


def _scrape(url: str, token: str | None) -> str:
    req = urllib.request.Request(url)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return str(resp.read().decode())


def _requests(text: str, **labels: str) -> float:
    return sum(
        s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
        if s.name == "istio_requests_total" and all(s.labels.get(k) == v for k, v in labels.items())
    )


def _counts(text: str) -> dict[str, float]:
    return {
        "gw_301": _requests(text, reporter="source", source_workload="istio-egressgateway",
                            destination_service="aliyun.com", response_code="301"),
        "sleep_301": _requests(text, reporter="source", source_workload="sleep",
                               destination_service=GATEWAY_SVC, response_code="301"),
        "sleep_502": _requests(text, reporter="source", source_workload="sleep",
                               destination_service="edition.cnn.com", response_code="502"),
    }  # fmt: skip


def test_metrics_count_each_request_once_per_reporter(mesh: Mesh) -> None:
    # Sidecars log (and so are counted) when the mesh asks for access logs, as on Istio;
    # gateways always do.
    registry_only = (WALKTHROUGH / "2-registry-only.yaml").read_text()
    logging = registry_only.replace("spec:\n", "spec:\n  accessLogFile: /dev/stdout\n")
    assert logging != registry_only
    mesh.meshgate("apply", "-f", str(WALKTHROUGH / "1-sleep.yaml"))
    mesh.meshgate("apply", "-f", "-", input=logging)
    mesh.meshgate("apply", "-f", str(WALKTHROUGH / "3-serviceentry.yaml"))
    mesh.meshgate("apply", "-f", str(WALKTHROUGH / "4-egress-gateway.yaml"))
    sleep = mesh.wait_pod("default", "sleep-")
    mesh.wait_pod("istio-system", "istio-egressgateway-")

    status: dict[str, Any] = json.loads(mesh.meshgate("status", "-o", "json").stdout)
    url = str(status["metrics"])
    assert url.startswith("http://127.0.0.1:") and url.endswith("/metrics"), url
    token = (mesh.home / "metrics-token").read_text().strip()
    with pytest.raises(urllib.error.HTTPError) as refused:
        _scrape(url, None)
    assert refused.value.code == 401

    # Warm up until the route through the gateway is in place, then count from here.
    def via_gateway() -> str:
        return mesh.curl(
            sleep, "-o", "/dev/null", "-w", "%{http_code}", "http://aliyun.com/"
        ).stdout

    ok, code = retry(via_gateway, lambda c: c == "301", 30.0)
    assert ok, code
    # Settled: every warm-up request that went through is counted by both reporters (the
    # sidecar's entries may arrive after the gateway's), and nothing more is arriving.
    last: list[dict[str, float]] = []

    def settled() -> dict[str, float]:
        last.append(_counts(_scrape(url, token)))
        return last[-1]

    ok, before = retry(
        settled,
        lambda c: c["gw_301"] >= 1 and c["sleep_301"] == c["gw_301"] and last[-2:] == [c, c],
        20.0,
        interval=0.5,
    )
    assert ok, before

    loop = (
        f"for i in $(seq {OK}); do curl -s -o /dev/null -w '%{{http_code}}\\n' http://aliyun.com/;"
        f" done; for i in $(seq {FAILED}); do curl -s -o /dev/null -w '%{{http_code}}\\n'"
        " http://edition.cnn.com/; done"
    )
    codes = mesh.meshgate("exec", sleep, "--", "/bin/sh", "-c", loop).stdout.split()
    assert codes == ["301"] * OK + ["502"] * FAILED, codes

    want = {"gw_301": OK, "sleep_301": OK, "sleep_502": FAILED}

    def delta() -> dict[str, float]:
        now = _counts(_scrape(url, token))
        return {k: now[k] - before[k] for k in now}

    ok, got = retry(delta, lambda d: d == want, 30.0, interval=0.5)
    seen = [line for line in _scrape(url, token).splitlines() if line.startswith("istio_requests")]
    assert ok, f"{got} != {want}\n" + "\n".join(seen)

    # Every family parses; the 5xx are the sidecar's blackhole, none of them the gateway's.
    text = mesh.meshgate("metrics").stdout
    names = {fam.name for fam in text_string_to_metric_families(text)}
    assert {
        "istio_requests", "istio_request_duration_milliseconds", "istio_request_bytes",
        "istio_response_bytes", "meshgate_xds_pushes", "meshgate_xds_connected_proxies",
        "meshgate_accesslog_entries_received", "meshgate_accesslog_entries_dropped",
        "meshgate_store_writes", "meshgate_xds_push_generate_seconds",
    } <= names  # fmt: skip
    assert _requests(text, source_workload="istio-egressgateway", response_code="502") == 0
    blocked = [
        s
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
        if s.name == "istio_requests_total" and s.labels.get("response_code") == "502"
    ]
    assert {s.labels["destination_service_name"] for s in blocked} == {"BlackHoleCluster"}
    assert all(s.labels["connection_security_policy"] == "unknown" for s in blocked)
    sleep_id = "spiffe://cluster.local/ns/default/sa/sleep"
    assert {s.labels["source_principal"] for s in blocked} == {sleep_id}
