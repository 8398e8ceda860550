"""Egress discovery on synthetic access-log entries: HTTP by Host, TLS by SNI, raw TCP by
the address dialed, several workloads, repeated requests counted once each; what is not a
sidecar's passthrough is left out; the emitted ServiceEntries and policies pass
``meshgate validate`` with no problem at all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from meshgate.cli.egress import _yaml_stream
from meshgate.cli.main import app
from meshgate.telemetry import discover as d
from meshgate.telemetry import discover_policy as dp


def entry(
    pod: str,
    *,
    ns: str = "default",
    authority: str | None = None,
    sni: str | None = None,
    dialed: str = "198.51.100.20:80",
    cluster: str = d.PASSTHROUGH,
    reporter: str = "sidecar",
    start: str = "2026-12-07T05:05:32.082Z",
) -> dict[str, Any]:
    return {
        "authority": authority,
        "requested_server_name": sni,
        "downstream_local_address": dialed,
        "upstream_host": dialed,
        "upstream_cluster": cluster,
        "start_time": start,
        "pod": pod,
        "namespace": ns,
        "reporter": reporter,
        "reason": None,
    }


def pod(name: str, ns: str, owner: str | None, sa: str, labels: dict[str, str]) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns, "labels": labels}
    if owner:
        meta["ownerReferences"] = [
            {"apiVersion": "apps/v1", "kind": "Deployment", "name": owner, "uid": "u1"}
        ]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"serviceAccountName": sa}}  # fmt: skip


SLEEP = "sleep-5d8f7c9b6-abcde"
SLEEP2 = "sleep-5d8f7c9b6-fghij"
API = "api-7c9b6d8f5-zzzzz"
PODS = [
    pod(SLEEP, "default", "sleep", "sleep", {"app": "sleep", "pod-template-hash": "5d8f7c9b6"}),
    pod(SLEEP2, "default", "sleep", "sleep", {"app": "sleep", "pod-template-hash": "5d8f7c9b6"}),
    pod(API, "shop", "api", "api-sa", {"app": "api", "pod-template-hash": "7c9b6d8f5"}),
    pod("debug", "default", None, "", {"run": "debug"}),
]
DEPLOYMENTS = [
    {"apiVersion": "apps/v1", "kind": "Deployment",
     "metadata": {"name": "sleep", "namespace": "default"},
     "spec": {"selector": {"matchLabels": {"app": "sleep"}}}},
]  # fmt: skip

ENTRIES = [
    entry(SLEEP, authority="httpbin.org", start="2026-12-07T05:00:00.000Z"),
    entry(SLEEP2, authority="httpbin.org:80", start="2026-12-07T05:10:00.500Z"),
    entry(SLEEP, authority="HTTPBIN.org", start="2026-12-07T05:01:00.000Z"),
    entry(SLEEP, sni="www.google.com", dialed="198.51.100.40:443"),
    entry(SLEEP, dialed="198.51.100.50:9000"),
    entry(SLEEP, dialed="198.51.100.50:9000"),
    entry(API, ns="shop", sni="www.google.com", dialed="198.51.100.40:443"),
    entry(API, ns="shop", authority="www.google.com", dialed="198.51.100.40:80"),
    entry("debug", authority="198.51.100.70:8080", dialed="198.51.100.70:8080"),
    # Not a passthrough: a registered host, a gateway's entry, an inbound request.
    entry(SLEEP, authority="aliyun.com", cluster="outbound|80||aliyun.com"),
    entry("istio-egressgateway-1-2", ns="istio-system", authority="x.org", reporter="gateway"),
    entry(SLEEP, authority="sleep", cluster="inbound|80||"),
    # A pod that is gone: named after its Deployment, service account unknown.
    entry("old-6b7c8d9f0-qwert", sni="api.example.com", dialed="192.0.2.9:443"),
]


def found() -> d.Discovery:
    return d.discover(ENTRIES, d.workloads_of(PODS, DEPLOYMENTS))


def summary(disc: d.Discovery) -> list[tuple[str, ...]]:
    return [
        (r.workload.namespace, r.workload.ref, r.workload.service_account, r.destination.host,
         str(r.destination.port), r.destination.protocol, str(r.count), d.iso(r.last_ms) or "-")
        for r in disc.rows
    ]  # fmt: skip


def test_rows_by_workload_and_destination_with_counts_and_last_seen() -> None:
    disc = found()
    assert summary(disc) == [
        ("default", "pod/debug", "default", "198.51.100.70", "8080", "HTTP", "1",
         "2026-12-07T05:05:32.082Z"),
        ("default", "deployment/old", "", "api.example.com", "443", "TLS", "1",
         "2026-12-07T05:05:32.082Z"),
        ("default", "deployment/sleep", "sleep", "198.51.100.50", "9000", "TCP", "2",
         "2026-12-07T05:05:32.082Z"),
        ("default", "deployment/sleep", "sleep", "httpbin.org", "80", "HTTP", "3",
         "2026-12-07T05:10:00.500Z"),
        ("default", "deployment/sleep", "sleep", "www.google.com", "443", "TLS", "1",
         "2026-12-07T05:05:32.082Z"),
        ("shop", "deployment/api", "api-sa", "www.google.com", "80", "HTTP", "1",
         "2026-12-07T05:05:32.082Z"),
        ("shop", "deployment/api", "api-sa", "www.google.com", "443", "TLS", "1",
         "2026-12-07T05:05:32.082Z"),
    ]  # fmt: skip
    assert disc.sidecar_entries == 12 and disc.entries == 13
    sleep_http = next(r for r in disc.rows if r.destination.host == "httpbin.org")
    assert sleep_http.pods == {SLEEP, SLEEP2}
    assert sleep_http.to_json()["lastSeen"] == "2026-12-07T05:10:00.500Z"


def test_namespace_filter_and_no_sidecar_entries() -> None:
    shop = d.discover(ENTRIES, d.workloads_of(PODS, DEPLOYMENTS), "shop")
    assert {r.workload.name for r in shop.rows} == {"api"}
    gateway_only = d.discover([ENTRIES[10]], {})
    assert gateway_only.rows == [] and gateway_only.sidecar_entries == 0


def test_destination_of_each_protocol() -> None:
    assert d.destination_of(entry("p", authority="Example.COM.:8080", dialed="1.2.3.4:8080")) == (
        d.Destination("example.com", 8080, "HTTP")
    )
    assert d.destination_of(entry("p", sni="db.example.com", dialed="[2001:db8::1]:5432")) == (
        d.Destination("db.example.com", 5432, "TLS")
    )
    assert d.destination_of(entry("p", dialed="[2001:db8::1]:5432")) == (
        d.Destination("2001:db8::1", 5432, "TCP")
    )
    assert d.destination_of(entry("p", cluster="BlackHoleCluster")) is None


def _docs(emitted: list[d.Emitted]) -> dict[str, dict[str, Any]]:
    return {e.obj["metadata"]["name"]: e.obj for e in emitted}


def test_service_entries_one_per_host() -> None:
    emitted, warnings = d.service_entries(found().rows)
    docs = _docs(emitted)
    assert sorted(docs) == [
        "discovered-api.example.com",
        "discovered-httpbin.org",
        "discovered-ip-198-51-100-50",
        "discovered-ip-198-51-100-70",
        "discovered-www.google.com",
    ]
    assert warnings == []
    google = docs["discovered-www.google.com"]
    # Used from two namespaces: in the root namespace, visible everywhere.
    assert google["metadata"]["namespace"] == "istio-system"
    assert google["spec"] == {
        "hosts": ["www.google.com"],
        "ports": [
            {"number": 80, "name": "http-80", "protocol": "HTTP"},
            {"number": 443, "name": "tls-443", "protocol": "TLS"},
        ],
        "location": "MESH_EXTERNAL",
        "resolution": "DNS",
    }
    tcp = docs["discovered-ip-198-51-100-50"]
    assert tcp["metadata"]["namespace"] == "default"
    assert tcp["spec"] == {
        "hosts": ["ip-198-51-100-50.discovered.external"],
        "addresses": ["198.51.100.50"],
        "ports": [{"number": 9000, "name": "tcp-9000", "protocol": "TCP"}],
        "location": "MESH_EXTERNAL",
        "resolution": "STATIC",
        "endpoints": [{"address": "198.51.100.50"}],
    }
    assert docs["discovered-ip-198-51-100-70"]["spec"]["ports"] == [
        {"number": 8080, "name": "http-8080", "protocol": "HTTP"}
    ]
    comment = next(e.comment for e in emitted if e.obj is google)
    assert comment == [
        "default/deployment/sleep -> TLS www.google.com:443: 1 request(s), "
        "last 2026-12-07T05:05:32.082Z",
        "shop/deployment/api -> HTTP www.google.com:80: 1 request(s), "
        "last 2026-12-07T05:05:32.082Z",
        "shop/deployment/api -> TLS www.google.com:443: 1 request(s), "
        "last 2026-12-07T05:05:32.082Z",
    ]


def test_one_port_seen_with_two_protocols_is_declared_once_with_a_warning() -> None:
    rows = d.discover(
        [entry("p", authority="a.example.com", dialed="1.2.3.4:8443"),
         entry("p", sni="a.example.com", dialed="1.2.3.4:8443")], {}
    ).rows  # fmt: skip
    emitted, warnings = d.service_entries(rows)
    assert emitted[0].obj["spec"]["ports"] == [
        {"number": 8443, "name": "http-8443", "protocol": "HTTP"}
    ]
    assert warnings == ["a.example.com: port 8443 was seen as HTTP, TLS: declared HTTP"]


def test_asm_policy_per_workload() -> None:
    emitted, warnings = dp.asm_policy(found().rows, "egressgateway-a")
    assert len(emitted) == 1
    policy = emitted[0].obj
    assert policy["apiVersion"] == "istio.alibabacloud.com/v1beta1"
    assert policy["metadata"]["name"] == "egress-by-egressgateway-a"
    assert policy["metadata"]["namespace"] == "istio-egress"
    assert policy["spec"]["byEgressGateway"] == {"name": "egressgateway-a"}
    rules = {r["name"]: r for r in policy["spec"]["egressRules"]}
    assert sorted(rules) == ["default-old", "default-sleep", "shop-api"]
    assert rules["default-sleep"]["from"] == [
        {"namespace": "default", "workloadSelector": {"app": "sleep"}}
    ]
    assert rules["default-sleep"]["to"] == [
        {"name": "httpbin-org-80", "hosts": ["httpbin.org"],
         "port": {"number": 80, "protocol": "HTTP", "name": "http-80"}},
        {"name": "www-google-com-443", "hosts": ["www.google.com"],
         "port": {"number": 443, "protocol": "TLS", "name": "tls-443"}},
    ]  # fmt: skip
    assert rules["shop-api"]["from"] == [{"namespace": "shop", "workloadSelector": {"app": "api"}}]
    assert len(warnings) == 2
    assert warnings[0] == (
        "default/pod/debug -> HTTP 198.51.100.70:8080: an IP address, not a host: not in the "
        "ASMEgressTrafficPolicy (use the ServiceEntry)"
    )


def test_authorization_policies_per_workload() -> None:
    emitted, warnings = dp.authorization_policies(
        found().rows, "istio-egressgateway", "cluster.local"
    )
    docs = _docs(emitted)
    assert sorted(docs) == ["egress-default-old", "egress-default-sleep", "egress-shop-api"]
    sleep = docs["egress-default-sleep"]
    assert sleep["metadata"]["namespace"] == "istio-system"
    assert sleep["spec"] == {
        "selector": {"matchLabels": {"istio": "egressgateway"}},
        "action": "ALLOW",
        "rules": [
            {"from": [{"source": {"principals": ["cluster.local/ns/default/sa/sleep"]}}],
             "to": [{"operation": {"hosts": ["httpbin.org"]}}]},
            {"from": [{"source": {"principals": ["cluster.local/ns/default/sa/sleep"]}}],
             "when": [{"key": "connection.sni", "values": ["www.google.com"]}]},
        ],
    }  # fmt: skip
    # The gone pod's service account is unknown: its namespace stands for it.
    old = docs["egress-default-old"]["spec"]["rules"][0]["from"][0]["source"]
    assert old == {"namespaces": ["default"]}
    assert len(warnings) == 2


def test_emitted_yaml_passes_validate_with_no_problem(tmp_path: Path) -> None:
    rows = found().rows
    docs = d.service_entries(rows)[0] + dp.asm_policy(rows, "egressgateway-a")[0]
    docs += dp.authorization_policies(rows, "istio-egressgateway", "cluster.local")[0]
    text = _yaml_stream([(e.obj, e.comment) for e in docs])
    assert text.startswith(
        "---\n# default/deployment/sleep -> TCP 198.51.100.50:9000: 2 request(s)"
    )
    assert "*id" not in text and "&id" not in text
    assert len(list(yaml.safe_load_all(text))) == 9
    path = tmp_path / "egress.yaml"
    path.write_text(text)
    result = CliRunner().invoke(app, ["validate", "-f", str(path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.stdout == f'"{path}" is valid\n'
    assert result.stderr == ""
