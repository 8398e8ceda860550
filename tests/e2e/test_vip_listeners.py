"""Under REGISTRY_ONLY, TLS and TCP to a Kubernetes Service's cluster IP go through the sidecar
to the service whatever the SNI (or none at all), as in Istio: the sidecar has a
``<cluster IP>_<port>`` listener matched by destination address, not an SNI chain on
``0.0.0.0_<port>`` that only the service's own host name would pass."""

from __future__ import annotations

import datetime
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.e2e.meshctl import WALKTHROUGH, Mesh, retry

pytestmark = pytest.mark.e2e

# A TLS server and a plain HTTP server on a TCP port, in one pod behind one Service.
SERVER = """
import http.server, os, ssl, sys, tempfile, threading
d = tempfile.mkdtemp()
open(os.path.join(d, "c.pem"), "w").write(sys.argv[1])
open(os.path.join(d, "k.pem"), "w").write(sys.argv[2])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(os.path.join(d, "c.pem"), os.path.join(d, "k.pem"))
tls = http.server.ThreadingHTTPServer(("0.0.0.0", 8443), http.server.SimpleHTTPRequestHandler)
tls.socket = ctx.wrap_socket(tls.socket, server_side=True)
threading.Thread(target=tls.serve_forever, daemon=True).start()
http.server.ThreadingHTTPServer(
    ("0.0.0.0", 9000), http.server.SimpleHTTPRequestHandler
).serve_forever()
"""


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


def _manifest() -> str:
    cert, key = _self_signed()
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "secure"},
        "spec": {
            "selector": {"matchLabels": {"app": "secure"}},
            "template": {
                "metadata": {"labels": {"app": "secure"}},
                "spec": {
                    "containers": [
                        {
                            "name": "secure",
                            "image": "python:3",
                            "command": ["python3", "-c", SERVER, cert, key],
                            "ports": [{"containerPort": 8443}, {"containerPort": 9000}],
                        }
                    ]
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "secure"},
        "spec": {
            "selector": {"app": "secure"},
            "ports": [
                {"name": "https", "port": 443, "targetPort": 8443},
                {"name": "tcp-web", "port": 9000},
            ],
        },
    }
    return json.dumps(deployment) + "\n---\n" + json.dumps(service) + "\n"


def _code(mesh: Mesh, pod: str, *args: str) -> str:
    proc = mesh.meshgate(
        "exec", pod, "--", "curl", "-sS", "-k", "-o", "/dev/null", "-w", "%{http_code}",
        "--max-time", "3", *args, check=False,
    )  # fmt: skip
    return proc.stdout.strip() or f"exit {proc.returncode}: {proc.stderr.strip()}"


def _until_200(mesh: Mesh, pod: str, *args: str, timeout: float = 30.0) -> None:
    ok, code = retry(lambda: _code(mesh, pod, *args), lambda c: c == "200", timeout, 0.3)
    if ok:
        return
    listeners = mesh.meshgate("pc", "listener", pod, check=False).stdout
    raise AssertionError(f"curl {' '.join(args)} from {pod}: {code!r}\n{listeners}")


def test_tls_and_tcp_to_a_cluster_ip_pass_registry_only(mesh: Mesh) -> None:
    mesh.meshgate("apply", "-f", str(WALKTHROUGH / "1-sleep.yaml"))
    mesh.meshgate("apply", "-f", str(WALKTHROUGH / "2-registry-only.yaml"))
    mesh.meshgate("apply", "-f", "-", input=_manifest())
    sleep = mesh.wait_pod("default", "sleep-")
    mesh.wait_pod("default", "secure-")
    vip = mesh.meshgate("get", "svc", "secure", "-o", "jsonpath={.spec.clusterIP}").stdout.strip()
    assert vip.startswith("10.96."), vip

    # No SNI at all (an IP literal), then an SNI that is no name of the service.
    _until_200(mesh, sleep, f"https://{vip}/")
    _until_200(mesh, sleep, "--resolve", f"other.example:443:{vip}", "https://other.example/")
    _until_200(mesh, sleep, f"http://{vip}:9000/")

    rows = mesh.meshgate("pc", "listener", sleep, "--port", "443").stdout
    assert vip in rows and "outbound|443||secure.default.svc.cluster.local" in rows, rows
    # REGISTRY_ONLY still holds: TLS to an address no service has is refused.
    assert _code(mesh, sleep, "https://192.0.2.77/") != "200"
