"""The walker on translated configs: the seed walkthrough's steps (golden fixtures' inputs)
translated for the sleep sidecar and the egress gateway, then one request traced through."""

from __future__ import annotations

from typing import Any

from tests.golden.seedworld import (
    SLEEP_IP,
    decode,
    gateway_proxy,
    sleep_proxy,
    step_resources,
)

from meshgate.model.snapshot import Snapshot
from meshgate.trace.config import ProxyView
from meshgate.trace.result import Request, Result, Source
from meshgate.trace.service import build_mesh
from meshgate.trace.target import parse_target
from meshgate.trace.walk import Walker
from meshgate.translate import translate

ALIYUN = "198.51.100.10"

DENY_ADMIN = """apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: egressgateway}}
  action: DENY
  rules:
  - to: [{operation: {paths: ["/admin*"]}}]
"""

TIMEOUT_VS = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: slow, namespace: default}
spec:
  hosts: [httpbin.org]
  http:
  - timeout: 2s
    route:
    - destination: {host: httpbin.org}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: httpbin, namespace: default}
spec:
  hosts: [httpbin.org]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 80, name: http, protocol: HTTP}]
"""


def _trace(step: int, target: str, extra: str = "", ip: str = ALIYUN, **kw: Any) -> Result:
    resources = step_resources(step) + (decode(extra) if extra else [])
    snap = Snapshot.build(resources)
    views: dict[str, ProxyView] = {}
    sleep = sleep_proxy(snap)
    views[sleep.ip] = ProxyView.from_config(sleep.node_id, translate(snap, sleep))
    if step >= 4:
        gw = gateway_proxy(snap)
        views[gw.ip] = ProxyView.from_config(gw.node_id, translate(snap, gw))
    pods = {p.ip: p for p in snap.pods.values()}
    source = pods[SLEEP_IP]
    mesh = build_mesh(
        snap,
        lambda pod: views.get(pod.ip),
        source,
        gateway_only=kw.pop("gateway_only", False),
    )
    request = parse_target(target, kw.pop("method", "GET"), kw.pop("headers", ()))
    request = Request(**{**request.__dict__, "ip": ip})
    src = Source(source.namespace, source.name, source.ip, source.service_account)
    return Walker(mesh, request, src).run(views[SLEEP_IP], source.key)


def test_allow_any_passes_through_to_the_original_address() -> None:
    r = _trace(1, "http://aliyun.com/")
    assert (r.verdict, r.status) == ("allowed", None)
    assert r.upstream == "198.51.100.10:80"
    assert [h.name for h in r.hops if h.step == "route"] == ["allow_any"]
    assert any("ALLOW_ANY" in n for n in r.notes)


def test_registry_only_blocks_http_with_502_and_names_the_fix() -> None:
    r = _trace(2, "aliyun.com")
    assert (r.verdict, r.status) == ("blocked", 502)
    assert "REGISTRY_ONLY" in r.reason and "no ServiceEntry registers aliyun.com" in r.reason
    assert "add a ServiceEntry for aliyun.com" in r.fix
    assert r.decided_by is not None and r.decided_by.kind == "MeshConfig"


def test_registry_only_resets_unregistered_tls() -> None:
    r = _trace(2, "https://aliyun.com/")
    assert (r.verdict, r.status) == ("reset", "reset")
    assert "BlackHoleCluster" in r.reason
    assert "protocol TLS" in r.fix


def test_serviceentry_lets_it_out_directly() -> None:
    r = _trace(3, "aliyun.com")
    assert r.verdict == "allowed"
    clusters = [h for h in r.hops if h.step == "cluster"]
    assert clusters[0].name == "outbound|80||aliyun.com"
    assert clusters[0].origin is not None and clusters[0].origin.kind == "ServiceEntry"


def test_gateway_hop_with_mtls_and_route() -> None:
    r = _trace(4, "aliyun.com/")
    assert r.verdict == "allowed", r.reason
    proxies = [h.proxy for h in r.hops]
    assert any(p.startswith("istio-system/istio-egressgateway") for p in proxies)
    routes = [h for h in r.hops if h.step == "route"]
    assert routes[0].origin is not None and routes[0].origin.kind == "VirtualService"
    assert routes[0].origin.name == "egressgateway-vs"
    assert r.upstream == "aliyun.com:80"


def test_gateway_authorization_policy_denies_with_403() -> None:
    r = _trace(4, "aliyun.com/admin", DENY_ADMIN)
    assert (r.verdict, r.status) == ("denied", 403)
    assert "AuthorizationPolicy istio-system/deny-admin rule 0" in r.reason
    ok = _trace(4, "aliyun.com/public", DENY_ADMIN)
    assert ok.verdict == "allowed"


def test_gateway_without_route_for_host_is_404() -> None:
    r = _trace(4, "aliyun.com/", headers=(("Host", "www.aliyun.com"),))
    # www.aliyun.com has no vhost on the sidecar (REGISTRY_ONLY): blocked there first
    assert r.verdict == "blocked"


def test_route_timeout_is_reported_not_predicted() -> None:
    r = _trace(3, "httpbin.org/delay/5", TIMEOUT_VS, ip="198.51.100.20")
    assert r.verdict == "allowed"
    assert r.timeout is not None and r.timeout["seconds"] == 2 and r.timeout["status"] == 504
    assert any(
        "times out after 2s (504 Gateway Timeout) if the upstream is slower" in n for n in r.notes
    )


def test_gateway_only_refuses_direct_exit() -> None:
    r = _trace(3, "aliyun.com", gateway_only=True)
    assert (r.verdict, r.status) == ("refused", 503)
    assert "GATEWAY_ONLY" in r.reason
