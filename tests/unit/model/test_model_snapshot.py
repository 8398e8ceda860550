"""Snapshot indexes and Istio lookup rules, from real decoded YAML."""

from __future__ import annotations

import ipaddress
import random
from typing import Any

from meshgate.api.decode import decode_text
from meshgate.model.proxy import Proxy
from meshgate.model.snapshot import Snapshot

PODS = """
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: shop, labels: {app: web, version: v1}}
spec:
  containers:
  - name: web
    ports: [{name: http-web, containerPort: 8080}]
status: {phase: Running, podIP: 10.34.0.11}
---
apiVersion: v1
kind: Pod
metadata: {name: web-2, namespace: shop, labels: {app: web, version: v2}}
spec:
  containers:
  - name: web
    ports: [{name: http-web, containerPort: 8081}]
status: {phase: Running, podIP: 10.34.0.12}
---
apiVersion: v1
kind: Pod
metadata: {name: web-3, namespace: shop, labels: {app: web}}
spec: {containers: [{name: web}]}
status: {phase: Pending, podIP: 10.34.0.13}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: http-web}
  - {name: grpc-api, port: 9000, targetPort: 9001}
  - {name: metrics, port: 9100, appProtocol: http}
  - {name: db, port: 5432}
"""


def build(text: str) -> Snapshot:
    result = decode_text(text, "test.yaml")
    assert result.ok, result.problems
    return Snapshot.build(result.resources)


def resources(text: str) -> list[Any]:
    result = decode_text(text, "test.yaml")
    assert result.ok, result.problems
    return result.resources


def test_kubernetes_service_view() -> None:
    snap = build(PODS)
    svc = snap.service("web.shop.svc.cluster.local")
    assert svc is not None
    protocols = {p.number: p.protocol for p in svc.ports}
    assert protocols == {80: "HTTP", 9000: "GRPC", 9100: "HTTP", 5432: "TCP"}
    # Named targetPort resolved per pod through its container ports; pending pod left out.
    assert [(e.address, e.port) for e in svc.endpoints[80]] == [
        ("10.34.0.11", 8080),
        ("10.34.0.12", 8081),
    ]
    assert [(e.address, e.port) for e in svc.endpoints[9000]] == [
        ("10.34.0.11", 9001),
        ("10.34.0.12", 9001),
    ]
    assert svc.addresses == (snap.cluster_ip(("shop", "web")),)


def test_cluster_ips_deterministic_and_unique() -> None:
    docs = [
        f"apiVersion: v1\nkind: Service\nmetadata: {{name: s{i}, namespace: n{i % 7}}}\n"
        f"spec: {{ports: [{{port: 80}}]}}"
        for i in range(300)
    ]
    docs.append(
        "apiVersion: v1\nkind: Service\nmetadata: {name: fixed, namespace: a}\n"
        "spec: {clusterIP: 10.96.0.10, ports: [{port: 80}]}"
    )
    items = resources("\n---\n".join(docs))
    first = Snapshot.build(items)
    shuffled = list(items)
    random.Random(7).shuffle(shuffled)
    second = Snapshot.build(shuffled)
    assert first.cluster_ips == second.cluster_ips
    ips = [ip for ip in first.cluster_ips.values()]
    assert len(set(ips)) == len(ips)
    assert first.cluster_ip(("a", "fixed")) == "10.96.0.10"
    net = ipaddress.ip_network("10.96.0.0/16")
    assert all(ipaddress.ip_address(ip) in net for ip in ips)
    zone = first.dns_zone()
    assert zone["fixed.a.svc.cluster.local"] == ["10.96.0.10"]


def test_service_entry_hosts_and_endpoints() -> None:
    snap = build(
        """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: default}
spec:
  hosts: [aliyun.com, www.aliyun.com]
  ports: [{number: 80, name: http, protocol: HTTP, targetPort: 8080}, {number: 443, name: tls-x}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: static, namespace: default}
spec:
  hosts: [db.example]
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 192.0.2.1}, {address: 192.0.2.2, ports: {tcp: 6432}}]
"""
    )
    ali = snap.service("aliyun.com")
    assert ali is not None and snap.service("www.aliyun.com") is not None
    assert [(e.address, e.port) for e in ali.endpoints[80]] == [("aliyun.com", 8080)]
    assert {p.number: p.protocol for p in ali.ports} == {80: "HTTP", 443: "TLS"}
    db = snap.service("db.example")
    assert db is not None
    assert [(e.address, e.port) for e in db.endpoints[5432]] == [
        ("192.0.2.1", 5432),
        ("192.0.2.2", 6432),
    ]


DRS = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: svcns}
spec: {hosts: [api.example.com], ports: [{number: 80, name: http}], resolution: DNS}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: root, namespace: istio-system}
spec: {host: "*.example.com"}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: svc, namespace: svcns}
spec: {host: api.example.com, exportTo: ["."]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: client, namespace: clientns}
spec: {host: api.example.com}
"""


def test_destination_rule_lookup_path() -> None:
    snap = build(DRS)
    assert snap.destination_rule("clientns", "api.example.com").name == "client"
    # svcns's rule is exported only to svcns, so another client falls through to the root.
    assert snap.destination_rule("elsewhere", "api.example.com").name == "root"
    assert snap.destination_rule("svcns", "api.example.com").name == "svc"
    assert snap.destination_rule("elsewhere", "other.org") is None


def test_mesh_defaults_and_override() -> None:
    snap = build(PODS)
    assert snap.mesh.outbound_mode == "ALLOW_ANY"
    assert snap.mesh.connect_timeout == "10s"
    # Istio's retry conditions and meshgate's reset-before-request; the access-log stream on.
    assert snap.mesh.retry_on == (
        "connect-failure,refused-stream,unavailable,cancelled,reset-before-request"
    )
    assert snap.mesh.access_log_service
    snap = build(
        PODS
        + "\n---\napiVersion: meshgate.io/v1alpha1\nkind: MeshConfig\nmetadata: {name: default}\n"
        "spec: {outboundTrafficPolicy: {mode: REGISTRY_ONLY}, accessLogFile: /dev/stdout,"
        " enableEnvoyAccessLogService: false, defaultHttpRetryPolicy: {retryOn: 5xx}}"
    )
    assert snap.mesh.outbound_mode == "REGISTRY_ONLY"
    assert snap.mesh.access_log_file == "/dev/stdout"
    assert not snap.mesh.access_log_service
    assert snap.mesh.retry_on == "5xx"  # the user's own conditions, nothing added


def test_sidecar_scoping_and_mode() -> None:
    snap = build(
        PODS
        + """
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: default}
spec: {hosts: [aliyun.com, other.com], ports: [{number: 80, name: http}], resolution: DNS}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: shop}
spec:
  egress: [{hosts: ["*/aliyun.com", "./*"]}]
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
"""
    )
    proxy = snap.proxy_for("sidecar~10.34.0.11~web-1.shop~shop.svc.cluster.local")
    assert proxy is not None and proxy.kind == "sidecar" and proxy.labels["app"] == "web"
    hosts = {s.hostname for s in snap.visible_services(proxy)}
    assert hosts == {"aliyun.com", "web.shop.svc.cluster.local"}
    assert snap.outbound_mode(proxy) == "REGISTRY_ONLY"
    other = Proxy("sidecar", "10.34.0.99", "x", "default")
    assert "other.com" in {s.hostname for s in snap.visible_services(other)}
    assert snap.outbound_mode(other) == "ALLOW_ANY"


def test_proxy_for_unknown_pod() -> None:
    snap = build(PODS)
    assert snap.proxy_for("sidecar~1.2.3.4~nope.shop~shop.svc.cluster.local") is None
    assert snap.proxy_for("garbage") is None


SE_STATIC = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: shop}
spec:
  hosts: [ext.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 198.51.100.7}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: vms, namespace: shop}
spec:
  hosts: [vms.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  workloadSelector: {labels: {app: web}}
"""


def test_service_entries_are_derived_once_per_resource_object() -> None:
    """A ServiceEntry object seen again (the decoder hands out the same one while its
    version stands) keeps its derived services; one whose endpoints come from pods is
    derived again, so a pod that became ready is its endpoint at once."""
    ses = resources(SE_STATIC)
    pods = resources(PODS)
    first = Snapshot.build(ses + pods)
    running = [p for p in pods if p.metadata.name != "web-2"]  # web-2 gone
    second = Snapshot.build(ses + running)
    assert second.service("ext.example.com") is first.service("ext.example.com")
    before = {e.address for e in first.service("vms.example.com").endpoints[80]}
    after = {e.address for e in second.service("vms.example.com").endpoints[80]}
    assert before == {"10.34.0.11", "10.34.0.12"} and after == {"10.34.0.11"}
    # A new object for the same ServiceEntry (a new version) is derived afresh.
    changed = resources(SE_STATIC.replace("198.51.100.7", "198.51.100.8"))
    third = Snapshot.build(changed + pods)
    assert [e.address for e in third.service("ext.example.com").endpoints[80]] == ["198.51.100.8"]
