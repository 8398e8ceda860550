"""Two mesh VirtualServices for one host, on a real mesh: an ASMEgressTrafficPolicy with an
HTTP entry for httpbin.org:80 and an HTTPS entry for httpbin.org:443 compiles to one
VirtualService with ``http`` routes and one with ``tls`` routes for httpbin.org. The
sidecar follows both (Istio's rule, ``model.meshvs``), so both go through the gateway:
under REGISTRY_ONLY a sidecar that followed only one of them would still reach
httpbin.org:443 directly (its ServiceEntry exists), which the gateway's log would miss.
"""

from __future__ import annotations

import json

import pytest

from tests.e2e.istio_task import apply_yaml, wait_log
from tests.e2e.meshctl import WALKTHROUGH, Mesh, retry

pytestmark = pytest.mark.e2e

POLICY = "httpbin-split"
SETUP = """apiVersion: v1
kind: Namespace
metadata: {name: split}
---
apiVersion: istio.alibabacloud.com/v1beta1
kind: IstioGateway
metadata:
  name: egressgateway-split
  namespace: istio-system
spec:
  gatewayType: egress
  replicaCount: 1
  ports:
  - {name: http-0, port: 80, protocol: TCP, targetPort: 80}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: sleep, namespace: split}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: sleep, namespace: split}
spec:
  replicas: 1
  selector:
    matchLabels: {app: sleep}
  template:
    metadata:
      labels: {app: sleep}
    spec:
      terminationGracePeriodSeconds: 0
      serviceAccountName: sleep
      containers:
      - name: sleep
        image: curlimages/curl
        command: ["/bin/sleep", "infinity"]
"""
POLICY_YAML = f"""apiVersion: istio.alibabacloud.com/v1beta1
kind: ASMEgressTrafficPolicy
metadata: {{name: {POLICY}, namespace: split}}
spec:
  byEgressGateway: {{name: egressgateway-split}}
  egressRules:
  - from:
    - namespace: split
    to:
    - name: http
      hosts: [httpbin.org]
      port: {{name: http, number: 80, protocol: HTTP}}
      byEgressGateway: {{port: 80}}
    - name: https
      hosts: [httpbin.org]
      port: {{name: https, number: 443, protocol: HTTPS}}
"""
GATEWAY = "-l istio=egressgateway-split"


def _code(mesh: Mesh, pod: str, url: str) -> str:
    out = mesh.meshgate(
        "exec",
        "-n",
        "split",
        pod,
        "--",
        "curl",
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "5",
        url,
        check=False,
    )
    return out.stdout.strip()


def _status(mesh: Mesh) -> dict[str, object]:
    out = mesh.meshgate(
        "get", "asmegresstrafficpolicy", POLICY, "-n", "split", "-o", "json", check=False
    ).stdout
    return dict(json.loads(out).get("status") or {}) if out.strip() else {}


def test_http_and_https_entries_for_one_host_both_use_the_gateway(mesh: Mesh) -> None:
    apply_yaml(mesh, (WALKTHROUGH / "2-registry-only.yaml").read_text())
    apply_yaml(mesh, SETUP)
    sleep = mesh.wait_pod("split", "sleep-")
    mesh.wait_pod("istio-system", "egressgateway-split-")

    apply_yaml(mesh, POLICY_YAML)
    ok, status = retry(lambda: _status(mesh), lambda s: s.get("status") == "Applied", 30)
    assert ok, status
    assert status["autoAllocatedGatewayPorts"] == {"httpbin.org-443": 10001}, status
    # Two mesh VirtualServices name httpbin.org: one with http routes, one with tls routes.
    kinds = {}
    for entry in ("http", "https"):
        vs = json.loads(
            mesh.meshgate(
                "get", "virtualservices", f"{POLICY}-{entry}", "-n", "split", "-o", "json"
            ).stdout
        )
        assert vs["spec"]["hosts"] == ["httpbin.org"], vs
        kinds[entry] = sorted(k for k in ("http", "tls") if k in vs["spec"])
    assert kinds == {"http": ["http"], "https": ["tls"]}, kinds

    for url in ("http://httpbin.org/get", "https://httpbin.org/get"):
        ok, code = retry(
            lambda u=url: _code(mesh, sleep, u),  # type: ignore[misc]
            lambda c: c == "200",
            30,
            interval=0.5,
        )
        assert ok, f"sleep -> {url}: {code}\n{mesh.log_tail()}"

    http_line = wait_log(
        mesh,
        GATEWAY,
        {"upstream_cluster": "outbound|80||httpbin.org", "response_code": 200},
        namespace="istio-system",
    )
    assert http_line["authority"] == "httpbin.org", http_line
    tls_line = wait_log(
        mesh,
        GATEWAY,
        {"upstream_cluster": "outbound|443||httpbin.org", "method": None},
        namespace="istio-system",
    )
    # The sidecar -> gateway hop is the mesh's mTLS (SNI from the policy's DestinationRule),
    # and the gateway carried the app's TLS to httpbin.org:443.
    assert tls_line["requested_server_name"] == "httpbin.org", tls_line
    assert tls_line["upstream_host"] == "198.51.100.20:443", tls_line
    assert int(str(tls_line["bytes_received"])) > 0, tls_line
