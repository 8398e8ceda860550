"""`meshgate trace` predicts what curl gets, on a real mesh (real Envoy, real netns).

One mesh, three policy states (ALLOW_ANY; REGISTRY_ONLY; REGISTRY_ONLY with ServiceEntries,
the seed's egress gateway, AuthorizationPolicies on it and a VirtualService timeout), two
source pods, HTTP/TLS/TCP: for every request the verdict `trace -o json` gives is checked
against what curl gets from the pod (the status code, or no HTTP answer for `reset`). An
`allowed` request gets the world host's own answer (known to the test). Then the text of
a 502, a 403, a 404, a 504 and a reset is checked for words that name what to change.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from tests.e2e.meshctl import WALKTHROUGH, Mesh, retry

pytestmark = pytest.mark.e2e

OTHER = """apiVersion: apps/v1
kind: Deployment
metadata: {name: other, namespace: default}
spec:
  replicas: 1
  selector: {matchLabels: {app: other}}
  template:
    metadata: {labels: {app: other}}
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - name: other
        image: curlimages/curl
        command: ["/bin/sleep", "infinity"]
"""

STATE3 = """apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: egressgateway}}
  action: DENY
  rules:
  - to: [{operation: {paths: ["/admin*"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-other-private, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: egressgateway}}
  action: DENY
  rules:
  - from: [{source: {ipBlocks: ["OTHER_IP/32"]}}]
    to: [{operation: {paths: ["/private*"], methods: ["GET"]}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: httpbin, namespace: default}
spec:
  hosts: [httpbin.org]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 80, name: http, protocol: HTTP}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: httpbin-timeout, namespace: default}
spec:
  hosts: [httpbin.org]
  http:
  - timeout: 1s
    route:
    - destination: {host: httpbin.org}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: cnn, namespace: default}
spec:
  hosts: [edition.cnn.com]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 80, name: http, protocol: HTTP}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: cnn-via-gateway, namespace: default}
spec:
  hosts: [edition.cnn.com]
  http:
  - route:
    - destination:
        host: istio-egressgateway.istio-system.svc.cluster.local
        port: {number: 80}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: google-tls, namespace: default}
spec:
  hosts: [www.google.com]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 443, name: tls, protocol: TLS}]
"""


@dataclass(frozen=True)
class Case:
    pod: str  # "sleep" | "other"
    target: str  # as given to trace
    world: str  # the world host's own answer when allowed
    method: str = "GET"
    slow: bool = False  # the upstream answers after the route timeout


def _curl_args(c: Case) -> list[str]:
    t = c.target
    if "://" not in t and ":" in t.split("/")[0]:  # host:port: a TCP connection (TLS inside)
        return ["-k", f"https://{t}/"]
    args = ["-X", c.method] if c.method != "GET" else []
    return [*args, "-k", t]


def _curl_code(mesh: Mesh, pod: str, c: Case) -> str:
    out = mesh.curl(pod, "-o", "/dev/null", "-w", "%{http_code}", *_curl_args(c), max_time=8)
    return out.stdout.strip()[-3:] or "000"


def _trace(mesh: Mesh, pod: str, c: Case) -> dict:
    out = mesh.meshgate("trace", pod, c.target, "--method", c.method, "-o", "json")
    return json.loads(out.stdout)


def _expected(c: Case, t: dict) -> str:
    """The code curl should see, from the trace (and the world's answer when allowed)."""
    if t["status"] == "reset":
        return "000"
    if isinstance(t["status"], int):
        return str(t["status"])
    assert t["verdict"] == "allowed", t
    if c.slow:
        assert t["timeout"] and t["timeout"]["status"] == 504, t
        return "504"
    return c.world


def _run(mesh: Mesh, pods: dict[str, str], cases: list[Case]) -> list[str]:
    wrong = []
    for c in cases:
        t = _trace(mesh, pods[c.pod], c)
        want = _expected(c, t)
        got = _curl_code(mesh, pods[c.pod], c)
        if got != want:
            wrong.append(
                f"{c}: trace {t['verdict']}/{t['status']} ({t['reason']}) -> {want}, curl {got}"
            )
    return wrong


def _settle(mesh: Mesh, pod: str, url: str, code: str) -> None:
    ok, got = retry(
        lambda: _curl_code(mesh, pod, Case("sleep", url, "")), lambda x: x == code, 60.0
    )
    assert ok, f"{url}: wanted {code}, got {got}\n{mesh.log_tail()}"
    # and the trace reads the ACKed config of the same state
    ok, _ = retry(
        lambda: _expected(Case("sleep", url, code), _trace(mesh, pod, Case("sleep", url, code))),
        lambda x: x == code,
        30.0,
    )
    assert ok, f"trace of {url} never matched {code}"


ALLOW_ANY = [
    Case(p, t, w, m)
    for p in ("sleep", "other")
    for t, w, m in (
        ("http://aliyun.com/", "301", "GET"),
        ("http://httpbin.org/get", "200", "GET"),
        ("http://httpbin.org/status/418", "418", "GET"),
        ("http://httpbin.org/post", "200", "POST"),
        ("https://aliyun.com/", "200", "GET"),
        ("https://edition.cnn.com/politics", "200", "GET"),
        ("198.51.100.10:443", "200", "GET"),
    )
]

REGISTRY_ONLY = [
    Case(p, t, w, m)
    for p in ("sleep", "other")
    for t, w, m in (
        ("http://aliyun.com/", "301", "GET"),
        ("http://httpbin.org/get", "200", "GET"),
        ("http://www.google.com/", "301", "DELETE"),
        ("https://aliyun.com/", "200", "GET"),
        ("https://www.google.com/", "200", "GET"),
        ("198.51.100.10:443", "200", "GET"),
    )
]

GATEWAY = [
    Case(p, t, w, m, slow)
    for p in ("sleep", "other")
    for t, w, m, slow in (
        ("http://aliyun.com/", "301", "GET", False),
        ("http://aliyun.com/admin", "301", "GET", False),
        ("http://aliyun.com/admin/users", "301", "POST", False),
        ("http://aliyun.com/private/x", "301", "GET", False),
        ("http://aliyun.com/private/x", "301", "PUT", False),
        ("http://edition.cnn.com/politics", "200", "GET", False),
        ("http://httpbin.org/get", "200", "GET", False),
        ("http://httpbin.org/delay/3", "200", "GET", True),
        ("http://www.google.com/", "301", "GET", False),
        ("https://www.google.com/", "200", "GET", False),
        ("https://edition.cnn.com/", "200", "GET", False),
        ("198.51.100.40:443", "200", "GET", False),
    )
]


def test_trace_predicts_curl(mesh: Mesh) -> None:
    mesh.meshgate("apply", "-f", str(WALKTHROUGH / "1-sleep.yaml"))
    mesh.meshgate("apply", "-f", "-", input=OTHER)
    pods = {
        "sleep": mesh.wait_pod("default", "sleep-"),
        "other": mesh.wait_pod("default", "other-"),
    }
    other_ip = mesh.meshgate(
        "get", "pod", pods["other"], "-o", "jsonpath={.status.podIP}"
    ).stdout.strip()
    _settle(mesh, pods["sleep"], "http://aliyun.com/", "301")
    wrong = _run(mesh, pods, ALLOW_ANY)

    mesh.meshgate("apply", "-f", str(WALKTHROUGH / "2-registry-only.yaml"))
    _settle(mesh, pods["sleep"], "http://aliyun.com/", "502")
    _settle(mesh, pods["other"], "http://aliyun.com/", "502")
    wrong += _run(mesh, pods, REGISTRY_ONLY)

    for step in ("3-serviceentry.yaml", "4-egress-gateway.yaml"):
        mesh.meshgate("apply", "-f", str(WALKTHROUGH / step))
    mesh.wait_pod("istio-system", "istio-egressgateway-")
    mesh.meshgate("apply", "-f", "-", input=STATE3.replace("OTHER_IP", other_ip))
    _settle(mesh, pods["sleep"], "http://aliyun.com/admin", "403")
    _settle(mesh, pods["other"], "http://aliyun.com/private/x", "403")
    _settle(mesh, pods["sleep"], "http://edition.cnn.com/", "404")
    wrong += _run(mesh, pods, GATEWAY)
    total = len(ALLOW_ANY) + len(REGISTRY_ONLY) + len(GATEWAY)
    assert total >= 40
    assert not wrong, f"{len(wrong)} of {total} predictions wrong:\n" + "\n".join(wrong)

    # The words: from the output alone, which resource to change.
    sleep = pods["sleep"]

    def text(target: str, *extra: str) -> str:
        return mesh.meshgate("trace", sleep, target, *extra).stdout

    t502 = text("http://www.google.com/")
    assert "Verdict:  blocked (HTTP 502)" in t502
    assert "REGISTRY_ONLY and no ServiceEntry registers www.google.com" in t502
    assert "add a ServiceEntry for www.google.com" in t502
    t403 = text("http://aliyun.com/admin")
    assert "Verdict:  denied (HTTP 403)" in t403
    assert "denied by AuthorizationPolicy istio-system/deny-admin rule 0" in t403
    assert "istio-system/istio-egressgateway" in t403
    t404 = text("http://edition.cnn.com/politics")
    assert "Verdict:  no-route (HTTP 404)" in t404
    assert "no route on the gateway" in t404 and "bind a VirtualService for edition.cnn.com" in t404
    assert "VirtualService default/cnn-via-gateway" in t404
    t504 = text("http://httpbin.org/delay/3")
    assert "times out after 1s (504 Gateway Timeout) if the upstream is slower" in t504
    assert "VirtualService default/httpbin-timeout" in t504
    reset = text("https://aliyun.com/")
    assert "Verdict:  reset" in reset and "BlackHoleCluster" in reset
    assert "add a ServiceEntry for aliyun.com port 443 protocol TLS" in reset
