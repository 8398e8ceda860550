"""AuthorizationPolicy on the seed's egress gateway, on a real mesh (real Envoy, real netns).

The seed walkthrough routes ``curl aliyun.com`` from the sleep pod through its sidecar to the
egress gateway. Policies in the root namespace selecting the gateway then decide there: a
DENY on ``/admin*`` answers 403 ``RBAC: access denied`` while ``/`` still gets the seed's
301; an ALLOW on the sleep pod's address (the gateway's peer is the sidecar, which has the
pod's address) lets sleep through and denies a second pod, DENY still first.
"""

from __future__ import annotations

import json

import pytest

from tests.e2e.meshctl import WALKTHROUGH, Mesh, retry

pytestmark = pytest.mark.e2e

DENIED_BODY = "RBAC: access denied"

DENY_ADMIN = """apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: egressgateway}}
  action: DENY
  rules:
  - to: [{operation: {paths: ["/admin*"]}}]
"""

ALLOW_SLEEP = """apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-sleep, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: egressgateway}}
  rules:
  - from: [{source: {ipBlocks: ["SLEEP_IP/32"]}}]
"""

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


def _answer(mesh: Mesh, pod: str, url: str) -> tuple[str, str]:
    """(status code, body) of ``curl url`` from ``pod``; status ``000`` when none came."""
    out = mesh.curl(pod, "-o", "-", "-w", "\n%{http_code}", url).stdout
    body, _, code = out.rpartition("\n")
    return code.strip() or "000", body


def _until(mesh: Mesh, pod: str, url: str, code: str, timeout: float = 60.0) -> str:
    """Ask until ``code`` comes back: a policy reaches the gateway over xDS, and the
    connections the sidecar keeps to it move to the new listener as the old one drains."""
    ok, (got, body) = retry(lambda: _answer(mesh, pod, url), lambda a: a[0] == code, timeout)
    assert ok, f"{pod} {url}: wanted {code}, last got {got} {body!r}\n{mesh.log_tail()}"
    return body


def _pod_ip(mesh: Mesh, namespace: str, pod: str) -> str:
    return mesh.meshgate(
        "get", "pod", pod, "-n", namespace, "-o", "jsonpath={.status.podIP}"
    ).stdout


def test_gateway_authorization_policies(mesh: Mesh) -> None:
    for step in sorted(WALKTHROUGH.glob("*.yaml")):
        mesh.meshgate("apply", "-f", str(step))
    sleep = mesh.wait_pod("default", "sleep-")
    gw = mesh.wait_pod("istio-system", "istio-egressgateway-")
    gw_pods = json.loads(mesh.meshgate("get", "pods", "-n", "istio-system", "-o", "json").stdout)
    (gw_item,) = [p for p in gw_pods["items"] if p["metadata"]["name"] == gw]
    assert gw_item["metadata"]["labels"]["istio"] == "egressgateway"  # what the policies select
    _until(mesh, sleep, "aliyun.com/admin", "301")  # the seed, before any policy

    # DENY /admin* on the gateway: Envoy's RBAC answers 403 itself; other paths go through.
    mesh.meshgate("apply", "-f", "-", input=DENY_ADMIN)
    assert _until(mesh, sleep, "aliyun.com/admin", "403") == DENIED_BODY
    assert _answer(mesh, sleep, "aliyun.com/admin/users")[0] == "403"
    head = mesh.curl(sleep, "-I", "aliyun.com").stdout
    assert head.startswith("HTTP/1.1 301 Moved Permanently"), head
    assert _answer(mesh, sleep, "aliyun.com/administrator-guide")[0] == "403"  # a prefix
    assert _answer(mesh, sleep, "aliyun.com/public/admin")[0] == "301"

    # A second pod with a sidecar reaches aliyun.com through the gateway too, until an ALLOW
    # policy names only the sleep pod's address.
    mesh.meshgate("apply", "-f", "-", input=OTHER)
    other = mesh.wait_pod("default", "other-")
    sleep_ip, other_ip = _pod_ip(mesh, "default", sleep), _pod_ip(mesh, "default", other)
    assert sleep_ip and other_ip and sleep_ip != other_ip
    _until(mesh, other, "aliyun.com", "301")
    mesh.meshgate("apply", "-f", "-", input=ALLOW_SLEEP.replace("SLEEP_IP", sleep_ip))
    assert _until(mesh, other, "aliyun.com", "403") == DENIED_BODY
    head = mesh.curl(sleep, "-I", "aliyun.com").stdout
    assert head.startswith("HTTP/1.1 301 Moved Permanently"), head
    # DENY is looked at before ALLOW: the allowed pod is still denied /admin.
    assert _answer(mesh, sleep, "aliyun.com/admin") == ("403", DENIED_BODY)

    # The gateway logged the denial with the other pod as its peer.
    def denied_line() -> str | None:
        out = mesh.meshgate("logs", "-n", "istio-system", gw, "-c", "istio-proxy").stdout
        lines = [x for x in out.splitlines() if '"response_code":403' in x.replace(" ", "")]
        hits = [x for x in lines if json.loads(x)["downstream_remote_address"].startswith(other_ip)]
        return hits[-1] if hits else None

    ok, line = retry(denied_line, bool, 10.0)
    assert ok and line is not None, "no 403 access-log line for the other pod"
    assert json.loads(line)["path"] == "/"

    # Policies removed: the filters go with them.
    mesh.meshgate(
        "delete", "authorizationpolicy", "allow-sleep", "deny-admin", "-n", "istio-system"
    )
    _until(mesh, other, "aliyun.com", "301")
    _until(mesh, sleep, "aliyun.com/admin", "301")
