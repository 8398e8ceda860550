"""Mutual TLS between sidecars, as a user sees it on Istio: auto mTLS that the app learns of
from `x-forwarded-client-cert`, PeerAuthentication that refuses plaintext (STRICT) or lets
it in (PERMISSIVE, DISABLE), and an AuthorizationPolicy on a sidecar that tells callers
apart by the identity the mTLS hop proves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.meshctl import WALKTHROUGH, Mesh, retry

pytestmark = pytest.mark.e2e

ECHO = """apiVersion: apps/v1
kind: Deployment
metadata: {name: echo}
spec:
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      containers:
      - name: echo
        image: python:3
        ports: [{containerPort: 8080}]
        command:
        - python3
        - -c
        - |
          import http.server
          class Echo(http.server.BaseHTTPRequestHandler):
              def do_GET(self):
                  body = "".join(f"{k}: {v}\\n" for k, v in self.headers.items()).encode()
                  self.send_response(200)
                  self.send_header("content-length", str(len(body)))
                  self.end_headers()
                  self.wfile.write(body)
          http.server.ThreadingHTTPServer(("", 8080), Echo).serve_forever()
---
apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  selector: {app: echo}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: outsider, annotations: {sidecar.istio.io/inject: "false"}}
spec:
  containers: [{name: c, image: curl, command: [/bin/sleep, infinity]}]
---
apiVersion: meshgate.io/v1alpha1
kind: MeshConfig
metadata: {name: default}
spec: {accessLogFile: /dev/stdout}
"""


def _pa(name: str, namespace: str, mode: str) -> str:
    return f"""apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {{name: {name}, namespace: {namespace}}}
spec: {{mtls: {{mode: {mode}}}}}
"""


def _get(mesh: Mesh, pod: str, namespace: str = "default") -> tuple[str, str]:
    """(status code, body) of GET http://echo.default/ from ``pod``; code 000: no answer."""
    proc = mesh.meshgate(
        "exec", "-n", namespace, pod, "--", "curl", "-s", "--max-time", "3",
        "-w", "\n%{http_code}", "http://echo.default/", check=False,
    )  # fmt: skip
    body, _, code = proc.stdout.rpartition("\n")
    return code.strip() or "000", body


def _until(mesh: Mesh, pod: str, want: str, namespace: str = "default") -> str:
    ok, (code, body) = retry(lambda: _get(mesh, pod, namespace), lambda r: r[0] == want, 20.0)
    assert ok, f"{namespace}/{pod}: wanted {want}, got {code} {body!r}\n{mesh.log_tail()}"
    return body


def _apply(mesh: Mesh, text: str, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    mesh.meshgate("apply", "-f", str(path))


@pytest.fixture
def echo_mesh(mesh: Mesh, tmp_path: Path) -> tuple[Mesh, str, str, str]:
    mesh.meshgate("apply", "-f", str(WALKTHROUGH / "1-sleep.yaml"))
    _apply(mesh, ECHO, tmp_path, "echo")
    sleep = mesh.wait_pod("default", "sleep-")
    echo = mesh.wait_pod("default", "echo-")
    outsider = mesh.wait_pod("default", "outsider")
    return mesh, sleep, echo, outsider


def test_auto_mtls_and_peer_authentication_modes(
    echo_mesh: tuple[Mesh, str, str, str], tmp_path: Path
) -> None:
    mesh, sleep, echo, outsider = echo_mesh
    meta = json.loads(mesh.meshgate("get", "pod", echo, "-o", "json").stdout)["metadata"]
    assert meta["labels"]["security.istio.io/tlsMode"] == "istio"  # as Istio's injector

    # Auto mTLS: the app sees who called, proven by the sleep pod's certificate.
    body = _until(mesh, sleep, "200")
    assert "URI=spiffe://cluster.local/ns/default/sa/sleep" in body, body
    # PERMISSIVE (Istio's default): a pod without a sidecar still gets in, in plaintext.
    body = _until(mesh, outsider, "200")
    assert "x-forwarded-client-cert" not in body.lower(), body
    out = mesh.meshgate("logs", echo, "-c", "istio-proxy").stdout
    inbound = [json.loads(x) for x in out.splitlines() if "inbound|8080||" in x]
    assert inbound, out
    assert "outbound_.80_._.echo.default.svc.cluster.local" in {
        x["requested_server_name"] for x in inbound
    }

    # STRICT in the namespace: plaintext is refused, the mesh identity still gets in.
    _apply(mesh, _pa("default", "default", "STRICT"), tmp_path, "strict")
    _until(mesh, outsider, "000")
    assert _get(mesh, sleep)[0] == "200"

    # DISABLE: clients guess it and send plaintext; everyone gets in, without identity.
    _apply(mesh, _pa("default", "default", "DISABLE"), tmp_path, "disable")
    body = _until(mesh, sleep, "200")
    _until(mesh, outsider, "200")
    ok, (_, body) = retry(
        lambda: _get(mesh, sleep), lambda r: "spiffe://" not in r[1] and r[0] == "200", 20.0
    )
    assert ok, body

    # Mesh-wide STRICT from the root namespace; the namespace's policy deleted.
    mesh.meshgate("delete", "peerauthentication", "default")
    _apply(mesh, _pa("default", "istio-system", "STRICT"), tmp_path, "mesh-strict")
    _until(mesh, outsider, "000")
    assert _get(mesh, sleep)[0] == "200"


def test_authorization_policy_on_a_sidecar_by_mtls_identity(
    echo_mesh: tuple[Mesh, str, str, str], tmp_path: Path
) -> None:
    mesh, sleep, _, outsider = echo_mesh
    _apply(mesh, "apiVersion: v1\nkind: Namespace\nmetadata: {name: other}\n", tmp_path, "ns")
    mesh.meshgate("apply", "-n", "other", "-f", str(WALKTHROUGH / "1-sleep.yaml"))
    other = mesh.wait_pod("other", "sleep-")
    _until(mesh, other, "200", "other")
    policy = """apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: echo-from-default, namespace: default}
spec:
  selector: {matchLabels: {app: echo}}
  rules: [{from: [{source: {namespaces: [default]}}]}]
"""
    _apply(mesh, policy, tmp_path, "authz")
    # Same host, same port: the caller's namespace (its certificate) decides.
    ok, seen = retry(lambda: _get(mesh, other, "other"), lambda r: r[0] == "403", 20.0)
    assert ok and seen == ("403", "RBAC: access denied"), seen
    assert _get(mesh, sleep)[0] == "200"
    # A caller without a sidecar has no identity: not from namespace default.
    assert _get(mesh, outsider)[0] == "403"
