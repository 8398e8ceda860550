"""The reference's ASMEgressTrafficPolicy example (egress-semantics §1.1), on a real mesh.

The policy in `istio-egress`, the IstioGateway `egressgateway-a` in `istio-system`, the mesh in
REGISTRY_ONLY: sleep-a (namespace `mytest`) reaches httpbin.org and www.httpbin.org on port 80
and https://edition.cnn.com (an HTTPS entry: gateway port 10001, a TLS server ending the mesh's
mTLS, then a tcp route) through the gateway over mutual TLS; sleep-b, matched by no rule, is
refused at the gateway on both; deleting the policy removes every resource it made.
"""

from __future__ import annotations

import json

import pytest

from tests.e2e.istio_task import apply_yaml, wait_log
from tests.e2e.meshctl import WALKTHROUGH, Mesh, retry

pytestmark = pytest.mark.e2e

POLICY = "egress-by-egressgateway-a"
SETUP = """apiVersion: v1
kind: Namespace
metadata: {name: mytest}
---
apiVersion: v1
kind: Namespace
metadata: {name: istio-egress}
---
apiVersion: istio.alibabacloud.com/v1beta1
kind: IstioGateway
metadata:
  name: egressgateway-a
  namespace: istio-system
spec:
  gatewayType: egress
  replicaCount: 1
  ports:
  - name: http-0
    port: 80
    protocol: TCP
    targetPort: 80
""" + "".join(
    f"""---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: {app}, namespace: mytest}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {app}, namespace: mytest}}
spec:
  replicas: 1
  selector:
    matchLabels: {{app: {app}}}
  template:
    metadata:
      labels: {{app: {app}}}
    spec:
      terminationGracePeriodSeconds: 0
      serviceAccountName: {app}
      containers:
      - name: sleep
        image: curlimages/curl
        command: ["/bin/sleep", "infinity"]
"""
    for app in ("sleep-a", "sleep-b")
)
# Verbatim from the reference (ASM's doc), httpbin.org added beside www.httpbin.org, and an
# HTTPS entry (TLS from the app, carried as TCP by the gateway after the mesh's mTLS).
POLICY_YAML = f"""apiVersion: istio.alibabacloud.com/v1beta1
kind: ASMEgressTrafficPolicy
metadata:
  name: {POLICY}
  namespace: istio-egress
spec:
  byEgressGateway:
    name: egressgateway-a
  egressRules:
  - from:
    - namespace: mytest
      workloadSelector:
        app: sleep-a
    to:
    - name: httpbin-service-http
      hosts:
      - www.httpbin.org   # several hosts must resolve to the same DNS address
      - httpbin.org
      port:
        name: http
        number: 80
        protocol: HTTP
      byEgressGateway:
        port: 80          # Sidecar -> 80 Gateway -> 80 Service (httpbin.org)
    - name: cnn-https
      hosts:
      - edition.cnn.com
      port:
        name: https
        number: 443
        protocol: HTTPS   # Sidecar -> 10001 (allocated) Gateway -> 443 Service
"""
GENERATED = [
    ("serviceentries", "istio-egress", f"{POLICY}-httpbin-service-http"),
    ("virtualservices", "istio-egress", f"{POLICY}-httpbin-service-http"),
    ("serviceentries", "istio-egress", f"{POLICY}-cnn-https"),
    ("virtualservices", "istio-egress", f"{POLICY}-cnn-https"),
    ("gateways", "istio-egress", POLICY),
    ("destinationrules", "istio-system", POLICY),
    ("authorizationpolicies", "istio-system", POLICY),
]


def _code(mesh: Mesh, pod: str, url: str) -> str:
    out = mesh.meshgate(
        "exec",
        "-n",
        "mytest",
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
        "get", "asmegresstrafficpolicy", POLICY, "-n", "istio-egress", "-o", "json", check=False
    ).stdout
    return dict(json.loads(out).get("status") or {}) if out.strip() else {}


def test_asm_egress_policy_example(mesh: Mesh) -> None:
    apply_yaml(mesh, (WALKTHROUGH / "2-registry-only.yaml").read_text())
    apply_yaml(mesh, SETUP)
    sleep_a = mesh.wait_pod("mytest", "sleep-a-")
    sleep_b = mesh.wait_pod("mytest", "sleep-b-")
    mesh.wait_pod("istio-system", "egressgateway-a-")
    # REGISTRY_ONLY before the policy: httpbin.org is unknown to the mesh.
    assert _code(mesh, sleep_a, "http://httpbin.org/get") == "502"

    apply_yaml(mesh, POLICY_YAML)
    ok, status = retry(lambda: _status(mesh), lambda s: s.get("status") == "Applied", 30)
    assert ok, status
    assert "IstioGateway istio-system/egressgateway-a port(s) 80, 10001" in str(status["message"])
    assert status["autoAllocatedGatewayPorts"] == {"edition.cnn.com-443": 10001}, status
    table = mesh.meshgate("get", "asmegresstrafficpolicy", "-n", "istio-egress").stdout
    assert "egressgateway-a" in table and "applied: 7 resources" in table, table

    # Every generated resource is visible with `get`, labelled with its owner.
    for plural, ns, name in GENERATED:
        obj = json.loads(mesh.meshgate("get", plural, name, "-n", ns, "-o", "json").stdout)
        labels = obj["metadata"]["labels"]
        assert labels["istio.alibabacloud.com/egress-traffic-policy"] == POLICY, obj
        if ns == "istio-egress":
            assert obj["metadata"]["ownerReferences"][0]["kind"] == "ASMEgressTrafficPolicy"

    # sleep-a: allowed, through the gateway, over mutual TLS.
    for host in ("httpbin.org", "www.httpbin.org"):
        ok, code = retry(
            lambda h=host: _code(mesh, sleep_a, f"http://{h}/get"),  # type: ignore[misc]
            lambda c: c == "200",
            30,
            interval=0.5,
        )
        assert ok, f"sleep-a -> {host}: {code}\n{mesh.log_tail()}"
    body = mesh.meshgate(
        "exec",
        "-n",
        "mytest",
        sleep_a,
        "--",
        "curl",
        "-sS",
        "--max-time",
        "5",
        "http://httpbin.org/headers",
    ).stdout
    # httpbin echoes what reached it: the gateway's XFCC names sleep-a's mesh identity.
    assert "spiffe://cluster.local/ns/mytest/sa/sleep-a" in body, body
    line = wait_log(
        mesh,
        "-l istio=egressgateway-a",
        {"authority": "httpbin.org", "response_code": 200},
        namespace="istio-system",
    )
    assert line["upstream_cluster"] == "outbound|80||www.httpbin.org", line
    # The sidecar -> gateway hop is mutual TLS, with the SNI the DestinationRule sets.
    assert line["requested_server_name"] == "www.httpbin.org", line

    # The HTTPS entry: the app's TLS inside the mesh's mTLS to the gateway's TLS server on
    # 10001, which ends the mTLS and carries the bytes to edition.cnn.com:443 (tcp route).
    ok, code = retry(
        lambda: _code(mesh, sleep_a, "https://edition.cnn.com/"),
        lambda c: c == "200",
        30,
        interval=0.5,
    )
    assert ok, f"sleep-a -> https://edition.cnn.com: {code}\n{mesh.log_tail()}"
    tcp_line = wait_log(
        mesh,
        "-l istio=egressgateway-a",
        {"upstream_cluster": "outbound|443||edition.cnn.com", "method": None},
        namespace="istio-system",
    )
    assert tcp_line["requested_server_name"] == "edition.cnn.com", tcp_line  # the mTLS hop's SNI
    assert tcp_line["upstream_host"] == "198.51.100.30:443", tcp_line
    assert tcp_line["response_code"] == 0, tcp_line

    # sleep-b: matched by no rule, refused at the gateway on its mTLS identity.
    assert _code(mesh, sleep_b, "https://edition.cnn.com/") == "000"
    # Network RBAC closes the connection on its first bytes: nothing comes back.
    denied = "rbac_access_denied_matched_policy[ns[istio-system]-policy[egress-by-egressgateway-a]"
    tcp_refused = wait_log(
        mesh,
        "-l istio=egressgateway-a",
        {"istio_policy_status": denied + "-rule[1]]", "requested_server_name": "edition.cnn.com"},
        namespace="istio-system",
    )
    assert tcp_refused["bytes_sent"] == 0, tcp_refused
    refusal = mesh.meshgate(
        "exec",
        "-n",
        "mytest",
        sleep_b,
        "--",
        "curl",
        "-sS",
        "-i",
        "--max-time",
        "5",
        "http://httpbin.org/get",
    ).stdout
    assert refusal.startswith("HTTP/1.1 403 Forbidden") and "RBAC: access denied" in refusal
    refused = wait_log(
        mesh,
        "-l istio=egressgateway-a",
        {"authority": "httpbin.org", "response_code": 403},
        namespace="istio-system",
    )
    assert refused["istio_policy_status"] == (
        "denied by AuthorizationPolicy istio-system/egress-by-egressgateway-a"
        f" (from {refused['downstream_remote_address']})"
    ), refused
    assert refused["requested_server_name"] == "www.httpbin.org", refused  # mTLS too
    assert refused["upstream_host"] is None, refused  # nothing left the gateway

    # Deleting the policy removes every resource it made.
    mesh.meshgate("delete", "asmegresstrafficpolicy", POLICY, "-n", "istio-egress")
    for plural, ns, name in GENERATED:
        ok, out = retry(
            lambda p=plural, n=ns, m=name: mesh.meshgate(  # type: ignore[misc]
                "get", p, m, "-n", n, check=False
            ),
            lambda proc: proc.returncode != 0,
            30,
            interval=0.5,
        )
        assert ok, f"{plural} {ns}/{name} still there: {out.stdout}"
    ok, code = retry(
        lambda: _code(mesh, sleep_a, "http://httpbin.org/get"),
        lambda c: c == "502",
        30,
        interval=0.5,
    )
    assert ok, code
