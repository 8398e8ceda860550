"""Apps served on low and well-known ports (80, 443, a named targetPort) behind Services, reached
from the sleep pod through both sidecars, as a user of Istio's samples sees them: Istio's
httpbin serves on 80 behind a Service 8000->80, and a pod whose own sidecar has an outbound
listener on 80 (every pod, once any Service uses port 80) must still take inbound
connections to its port 80 on the inbound side (15006: mTLS, authorization), never hand them
to that outbound listener."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.meshctl import WALKTHROUGH, Mesh, retry

pytestmark = pytest.mark.e2e

SLEEP_ID = "spiffe://cluster.local/ns/default/sa/sleep"

HTTPBIN = """apiVersion: apps/v1
kind: Deployment
metadata: {name: httpbin}
spec:
  selector: {matchLabels: {app: httpbin}}
  template:
    metadata: {labels: {app: httpbin}}
    spec:
      containers:
      - name: httpbin
        image: docker.io/kennethreitz/httpbin
        ports: [{name: web, containerPort: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: httpbin}
spec:
  selector: {app: httpbin}
  ports: [{name: http, port: 8000, targetPort: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: httpbin-80}
spec:
  selector: {app: httpbin}
  ports: [{name: http, port: 80, targetPort: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: httpbin-named}
spec:
  selector: {app: httpbin}
  ports: [{name: http, port: 9080, targetPort: web}]
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

STRICT = """apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: default}
spec: {mtls: {mode: STRICT}}
"""


def _get(mesh: Mesh, pod: str, url: str, *args: str) -> tuple[str, str]:
    """(status code, body) of GET ``url`` from ``pod``; code 000: no answer."""
    proc = mesh.meshgate(
        "exec", pod, "--", "curl", "-s", "--max-time", "3", "-w", "\n%{http_code}",
        *args, url, check=False,
    )  # fmt: skip
    body, _, code = proc.stdout.rpartition("\n")
    return code.strip() or "000", body


def _until(mesh: Mesh, pod: str, url: str, want: str, *args: str) -> str:
    ok, (code, body) = retry(lambda: _get(mesh, pod, url, *args), lambda r: r[0] == want, 30.0)
    assert ok, f"{url} from {pod}: wanted {want}, got {code} {body!r}\n{mesh.log_tail()}"
    return body


def _apply(mesh: Mesh, text: str, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    mesh.meshgate("apply", "-f", str(path))


def _client_cert(body: str) -> str:
    return str(json.loads(body)["headers"].get("X-Forwarded-Client-Cert", ""))


def test_target_port_80_through_both_sidecars(mesh: Mesh, tmp_path: Path) -> None:
    mesh.meshgate("apply", "-f", str(WALKTHROUGH / "1-sleep.yaml"))
    _apply(mesh, HTTPBIN, tmp_path, "httpbin")
    sleep = mesh.wait_pod("default", "sleep-")
    httpbin = mesh.wait_pod("default", "httpbin-")
    outsider = mesh.wait_pod("default", "outsider")

    # Auto mTLS between the sidecars: each Service's port reaches the app on 80, and the app
    # learns who called from the certificate the inbound side checked.
    for url in (
        "http://httpbin:8000/headers",  # Istio's sample: 8000 -> 80
        "http://httpbin-80/headers",  # 80 -> 80
        "http://httpbin-named:9080/headers",  # a named targetPort, resolved to 80
    ):
        body = _until(mesh, sleep, url, "200")
        assert f"URI={SLEEP_ID}" in _client_cert(body), body

    # The target's sidecar handled them on its inbound side, on the app's port.
    log = mesh.meshgate("logs", httpbin, "-c", "istio-proxy").stdout
    inbound = [json.loads(x) for x in log.splitlines() if '"inbound|80||"' in x]
    names = {x.get("requested_server_name") for x in inbound}
    assert {
        "outbound_.8000_._.httpbin.default.svc.cluster.local",
        "outbound_.80_._.httpbin-80.default.svc.cluster.local",
        "outbound_.9080_._.httpbin-named.default.svc.cluster.local",
    } <= names, log

    # PERMISSIVE: a caller without a sidecar gets in in plaintext, with no identity; and the
    # pod's own outbound listener on 80 is no open door: a Host naming another service is
    # still answered by this app, not routed on.
    body = _until(mesh, outsider, "http://httpbin-80/headers", "200", "-H", "Host: sleep")
    assert _client_cert(body) == "", body
    assert json.loads(body)["headers"]["Host"] == "sleep", body

    # STRICT: plaintext is refused on port 80 too; the mesh identity still gets in.
    _apply(mesh, STRICT, tmp_path, "strict")
    _until(mesh, outsider, "http://httpbin-80/headers", "000")
    body = _until(mesh, sleep, "http://httpbin:8000/headers", "200")
    assert f"URI={SLEEP_ID}" in _client_cert(body), body
