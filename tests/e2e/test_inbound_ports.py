"""Apps served on low and well-known ports (80, 443, a named targetPort) behind Services, reached
from the sleep pod through both sidecars, as a user of Istio's samples sees them: Istio's
httpbin serves on 80 behind a Service 8000->80, and a pod whose own sidecar has an outbound
listener on 80 (every pod, once any Service uses port 80) must still take inbound
connections to its port 80 on the inbound side (15006: mTLS, authorization), never hand them
to that outbound listener."""

from __future__ import annotations

import datetime
import json
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

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

# A TLS server of the app's own on 443 (the sidecars carry it as TCP, inside mesh mTLS).
TLS_SERVER = """
import http.server, os, ssl, sys, tempfile
d = tempfile.mkdtemp()
open(os.path.join(d, "c.pem"), "w").write(sys.argv[1])
open(os.path.join(d, "k.pem"), "w").write(sys.argv[2])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(os.path.join(d, "c.pem"), os.path.join(d, "k.pem"))
srv = http.server.ThreadingHTTPServer(("0.0.0.0", 443), http.server.SimpleHTTPRequestHandler)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
"""


def _deployment(name: str, command: list[str], port: int, **pod: object) -> dict[str, object]:
    meta: dict[str, object] = {"labels": {"app": name}}
    if pod.pop("sidecar", True) is False:
        meta["annotations"] = {"sidecar.istio.io/inject": "false"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": meta,
                "spec": {
                    **pod,
                    "containers": [
                        {
                            "name": "app",
                            "image": "python:3",
                            "command": command,
                            "ports": [{"containerPort": port}],
                        }
                    ],
                },
            },
        },
    }


def _service(name: str, port: int, target: int, port_name: str = "http") -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {
            "selector": {"app": name},
            "ports": [{"name": port_name, "port": port, "targetPort": target}],
        },
    }


def _self_signed() -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "secure")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()


def _neighbours() -> str:
    cert, key = _self_signed()
    serve80 = ["python3", "-m", "http.server", "80"]
    docs = [
        # Non-root on port 80: container runtimes open the privileged ports in a pod.
        _deployment("web", serve80, 80, securityContext={"runAsUser": 1000, "runAsGroup": 1000}),
        _service("web", 8000, 80),
        _deployment("secure", ["python3", "-c", TLS_SERVER, cert, key], 443),
        _service("secure", 443, 443, "https"),
        _deployment("plain", serve80, 80, sidecar=False),
        _service("plain", 8000, 80),
    ]
    return "\n---\n".join(json.dumps(d) for d in docs)


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
    want = {
        "outbound_.8000_._.httpbin.default.svc.cluster.local",
        "outbound_.80_._.httpbin-80.default.svc.cluster.local",
        "outbound_.9080_._.httpbin-named.default.svc.cluster.local",
    }

    def inbound_names() -> tuple[set[str], str]:
        log = mesh.meshgate("logs", httpbin, "-c", "istio-proxy").stdout
        entries = [json.loads(x) for x in log.splitlines() if '"inbound|80||"' in x]
        return {str(x.get("requested_server_name")) for x in entries}, log

    ok, (seen, log) = retry(inbound_names, lambda r: want <= r[0], 15.0)
    assert ok, f"inbound|80|| entries for {sorted(seen)}, wanted {sorted(want)}:\n{log}"

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


def test_low_target_ports_non_root_tls_and_no_sidecar(mesh: Mesh, tmp_path: Path) -> None:
    mesh.meshgate("apply", "-f", str(WALKTHROUGH / "1-sleep.yaml"))
    _apply(mesh, _neighbours(), tmp_path, "neighbours")
    sleep = mesh.wait_pod("default", "sleep-")
    for name in ("web-", "secure-", "plain-"):
        mesh.wait_pod("default", name)

    # A non-root app binds port 80 in its pod and serves through both sidecars.
    body = _until(mesh, sleep, "http://web:8000/", "200")
    assert "Directory listing" in body, body

    # The app's own TLS on 443, carried as TCP: its certificate reaches the client.
    def https() -> subprocess.CompletedProcess[str]:
        return mesh.meshgate(
            "exec", sleep, "--", "curl", "-sSk", "--max-time", "3", "-o", "/dev/null",
            "-w", "%{http_code}", "https://secure/", check=False,
        )  # fmt: skip

    ok, out = retry(https, lambda p: p.stdout == "200", 30.0)
    assert ok, f"https://secure/ from sleep: {out.stdout!r} {out.stderr}\n{mesh.log_tail()}"
    # A pod without a sidecar on port 80: the client's sidecar speaks plaintext to it.
    body = _until(mesh, sleep, "http://plain:8000/", "200")
    assert "Directory listing" in body, body
