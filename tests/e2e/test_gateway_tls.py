"""TLS at the egress gateway on real Envoy, with certificates from Kubernetes Secrets (SDS):
(a) the gateway originates TLS for a plain-HTTP request (DestinationRule ``credentialName``
holding the world CA), as in Istio's "TLS origination with an egress gateway" task;
(b) an HTTPS Gateway server (SIMPLE, then MUTUAL, ``credentialName``) terminates TLS and
routes by Host; MUTUAL refuses a client without a certificate from the Secret's CA.
Either way every proxy is SYNCED with no secret missing: nothing waits for SDS."""

from __future__ import annotations

import base64
import datetime
import json
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from meshgate.home import run_dir
from meshgate.runtime.worldca import issue_server_cert
from tests.e2e.meshctl import WALKTHROUGH, Mesh, retry

pytestmark = pytest.mark.e2e

GW = "istio-egressgateway.istio-system.svc.cluster.local"
SECRET = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"

GATEWAY_DEPLOYMENT = """apiVersion: istio.alibabacloud.com/v1beta1
kind: IstioGateway
metadata: {name: istio-egressgateway, namespace: istio-system}
spec:
  gatewayType: egress
  replicaCount: 1
  ports:
  - {name: http-0, port: 80, protocol: TCP, targetPort: 80}
  - {name: https-0, port: 443, protocol: TCP, targetPort: 443}
"""

ORIGINATE = f"""apiVersion: v1
kind: Secret
metadata: {{name: cnn-ca, namespace: istio-system}}
type: Opaque
data: {{ca.crt: CA_B64}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: cnn}}
spec:
  hosts: [edition.cnn.com]
  location: MESH_EXTERNAL
  ports:
  - {{number: 80, name: http-port, protocol: HTTP}}
  - {{number: 443, name: https-port-for-tls-origination, protocol: HTTPS}}
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: istio-egressgateway}}
spec:
  selector: {{istio: egressgateway}}
  servers:
  - port: {{number: 80, name: http, protocol: HTTP}}
    hosts: [edition.cnn.com]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: direct-cnn-through-egress-gateway}}
spec:
  hosts: [edition.cnn.com]
  gateways: [istio-egressgateway, mesh]
  http:
  - match: [{{gateways: [mesh], port: 80}}]
    route: [{{destination: {{host: {GW}, port: {{number: 80}}}}}}]
  - match: [{{gateways: [istio-egressgateway], port: 80}}]
    route: [{{destination: {{host: edition.cnn.com, port: {{number: 443}}}}}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: originate-tls-for-edition-cnn-com}}
spec:
  host: edition.cnn.com
  trafficPolicy:
    portLevelSettings:
    - port: {{number: 443}}
      tls: {{mode: SIMPLE, credentialName: cnn-ca, sni: edition.cnn.com}}
"""

TERMINATE = """apiVersion: v1
kind: Secret
metadata: {name: secure-httpbin, namespace: istio-system}
type: kubernetes.io/tls
stringData:
  tls.crt: |
CERT
  tls.key: |
KEY
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: httpbin}
spec:
  hosts: [httpbin.org]
  location: MESH_EXTERNAL
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: secure-gw}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: [httpbin.org]
    tls: {mode: SIMPLE, credentialName: secure-httpbin}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: httpbin-via-https}
spec:
  hosts: [httpbin.org]
  gateways: [secure-gw]
  http:
  - headers:
      response: {set: {x-terminated-by: egress-gateway}}
    route: [{destination: {host: httpbin.org, port: {number: 80}}}]
"""


def _indent(pem: bytes) -> str:
    return "\n".join("    " + line for line in pem.decode().strip().splitlines())


def _own_ca() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gateway test CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _client_cert(
    ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate
) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sleep client")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([x509.OID_CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _pod_ip(mesh: Mesh, namespace: str, pod: str) -> str:
    return mesh.meshgate(
        "get", "pod", pod, "-n", namespace, "-o", "jsonpath={.status.podIP}"
    ).stdout.strip()


def _curl(mesh: Mesh, pod: str, *args: str) -> tuple[int, str]:
    proc = mesh.curl(pod, "-i", *args)
    return proc.returncode, proc.stdout + proc.stderr


def _answered_200(result: tuple[int, str]) -> bool:
    code, out = result
    return code == 0 and out.startswith("HTTP/") and " 200" in out.splitlines()[0]


def _until_ok(mesh: Mesh, pod: str, *args: str, timeout: float = 30.0) -> str:
    ok, (_, out) = retry(lambda: _curl(mesh, pod, *args), _answered_200, timeout, 0.3)
    if not ok:
        raise AssertionError(
            f"curl {' '.join(args)}: no 200; last answer:\n{out}\n{mesh.log_tail()}"
        )
    return out


def _gateway_log(mesh: Mesh, pod: str, want: dict[str, Any], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = mesh.meshgate("logs", "-n", "istio-system", pod, "-c", "istio-proxy").stdout
        for line in out.splitlines():
            if line.startswith("{"):
                entry = json.loads(line)
                if all(entry.get(k) == v for k, v in want.items()):
                    return
        time.sleep(0.3)
    raise AssertionError(f"no gateway access log line with {want}")


def _credentials(sds: dict[str, Any]) -> list[str]:
    """The Kubernetes Secrets among a proxy's SDS names; the rest is its mesh identity
    (``default`` and ``ROOTCA``, for auto mTLS to pods with a sidecar)."""
    names = list(sds["subscribedNames"])
    assert set(names) - {n for n in names if n.startswith("kubernetes://")} <= {
        "default",
        "ROOTCA",
    }, names
    return [n for n in names if n.startswith("kubernetes://")]


def _assert_synced(mesh: Mesh, pod: str, timeout: float = 10.0) -> dict[str, Any]:
    """Every xDS type of the proxy ACKed, no SDS name missing; returns its SDS status."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        # One proxy's detail: it lists the names subscribed to (a listing has counts).
        proxies = json.loads(mesh.meshgate("proxy-status", pod, "-o", "json").stdout)
        (last,) = [p for p in proxies if p["nodeId"].split("~")[2].startswith(pod)]
        types = last["types"]
        if SECRET in types and all(
            t["state"] == "SYNCED" and not t["missingNames"] for t in types.values()
        ):
            return dict(types[SECRET])
        time.sleep(0.3)
    raise AssertionError(f"{pod} not SYNCED with every secret: {json.dumps(last, indent=1)}")


def _no_fetch_timeout(mesh: Mesh, pod: str) -> None:
    out = mesh.meshgate("logs", "-n", "istio-system", pod, "-c", "istio-proxy").stdout
    assert "initial fetch timed out" not in out, out[-2000:]


def test_egress_gateway_originates_tls_with_credential_name(mesh: Mesh) -> None:
    mesh.meshgate("apply", "-f", str(WALKTHROUGH / "1-sleep.yaml"))
    mesh.meshgate("apply", "-f", "-", input=GATEWAY_DEPLOYMENT)
    sleep = mesh.wait_pod("default", "sleep-")
    gw = mesh.wait_pod("istio-system", "istio-egressgateway-")
    ca = (run_dir(mesh.home) / "world-ca.pem").read_bytes()
    config = ORIGINATE.replace("CA_B64", base64.b64encode(ca).decode())
    started = time.monotonic()
    mesh.meshgate("apply", "-f", "-", input=config)

    # Plain HTTP from the app -> sidecar -> gateway:80 -> TLS (world CA from the Secret) -> 443.
    out = _until_ok(mesh, sleep, "http://edition.cnn.com/")
    assert "CNN (meshgate demo world)" in out
    assert time.monotonic() - started < 15, "something waited for Envoy's SDS fetch timeout"
    _gateway_log(
        mesh,
        gw,
        {"authority": "edition.cnn.com", "upstream_cluster": "outbound|443||edition.cnn.com"},
    )
    sds = _assert_synced(mesh, gw)
    assert _credentials(sds) == ["kubernetes://cnn-ca-cacert"]
    assert sds["resourceCount"] == len(sds["subscribedNames"])  # every one served
    _no_fetch_timeout(mesh, gw)

    # The sidecar ignores credentialName (gateways only, as in Istio): it asks for no
    # Kubernetes secret, only its own mesh identity.
    proxies = json.loads(mesh.meshgate("proxy-status", sleep, "-o", "json").stdout)
    (side,) = [p for p in proxies if p["nodeId"].split("~")[2].startswith(sleep)]
    assert _credentials(side["types"].get(SECRET) or {"subscribedNames": []}) == []


def test_gateway_terminates_tls_with_credential_name(mesh: Mesh, tmp_path: Path) -> None:
    mesh.meshgate("apply", "-f", str(WALKTHROUGH / "1-sleep.yaml"))
    mesh.meshgate("apply", "-f", "-", input=GATEWAY_DEPLOYMENT)
    sleep = mesh.wait_pod("default", "sleep-")
    gw = mesh.wait_pod("istio-system", "istio-egressgateway-")
    ca_key, ca_cert = _own_ca()
    cert, key = issue_server_cert(ca_key, ca_cert, ["httpbin.org"])
    config = TERMINATE.replace("CERT", _indent(cert)).replace("KEY", _indent(key))
    mesh.meshgate("apply", "-f", "-", input=config)
    # The pod is a sandbox: what its curl reads is copied in, as with kubectl cp.
    (tmp_path / "gateway-ca.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    ca_file = "/tmp/gateway-ca.pem"
    mesh.meshgate("cp", str(tmp_path / "gateway-ca.pem"), f"{sleep}:{ca_file}")

    # Straight to the gateway pod: the sleep sidecar passes TLS through (ALLOW_ANY), the
    # gateway ends it with the Secret's certificate, then routes HTTP by Host.
    gw_ip = _pod_ip(mesh, "istio-system", gw)
    out = _until_ok(
        mesh,
        sleep,
        "-v",
        "--cacert",
        ca_file,
        "--resolve",
        f"httpbin.org:443:{gw_ip}",
        "https://httpbin.org/headers",
    )
    # The handshake: the Secret's certificate, verified against our CA; ALPN h2 from the
    # gateway's HTTPS server (Istio's h2, http/1.1).
    assert "subject: CN=httpbin.org" in out, out
    assert "SSL certificate verify ok" in out, out
    assert out.startswith("HTTP/2 200"), out
    assert "x-terminated-by: egress-gateway" in out.lower()
    _gateway_log(
        mesh, gw, {"authority": "httpbin.org", "upstream_cluster": "outbound|80||httpbin.org"}
    )
    sds = _assert_synced(mesh, gw)
    assert _credentials(sds) == ["kubernetes://secure-httpbin"]
    _no_fetch_timeout(mesh, gw)

    # A certificate the client does not trust fails the handshake (curl 60): real TLS.
    resolve = ("--resolve", f"httpbin.org:443:{gw_ip}")
    code, out = _curl(mesh, sleep, *resolve, "https://httpbin.org/headers")
    assert code == 60, out

    # MUTUAL: the same Secret's ca.crt (kubernetes://secure-httpbin-cacert) validates clients.
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    mutual = config.replace("mode: SIMPLE", "mode: MUTUAL").replace(
        "stringData:\n", f"data: {{ca.crt: {base64.b64encode(ca_pem).decode()}}}\nstringData:\n"
    )
    mesh.meshgate("apply", "-f", "-", input=mutual)
    client_cert, client_key = _client_cert(ca_key, ca_cert)
    (tmp_path / "client.pem").write_bytes(client_cert)
    (tmp_path / "client.key").write_bytes(client_key)
    for name in ("client.pem", "client.key"):
        mesh.meshgate("cp", str(tmp_path / name), f"{sleep}:/tmp/{name}")
    trust = ("--cacert", ca_file, *resolve)
    deadline = time.monotonic() + 20
    code, out = 0, ""
    while time.monotonic() < deadline:  # until the gateway asks for a client certificate
        code, out = _curl(mesh, sleep, *trust, "https://httpbin.org/headers")
        if code != 0:
            break
        time.sleep(0.3)
    # No client certificate: refused. Under TLS 1.3 the client learns it after its own
    # handshake ends, so curl reports it as a TLS (35), receive (56) or HTTP/2 stream
    # (16, 18) error; never an HTTP answer.
    assert code in (16, 18, 35, 56), out
    assert "HTTP/2 200" not in out
    out = _until_ok(
        mesh,
        sleep,
        *trust,
        "--cert",
        "/tmp/client.pem",
        "--key",
        "/tmp/client.key",
        "https://httpbin.org/headers",
    )
    assert "x-terminated-by: egress-gateway" in out.lower()
    sds = _assert_synced(mesh, gw)
    assert _credentials(sds) == [
        "kubernetes://secure-httpbin",
        "kubernetes://secure-httpbin-cacert",
    ]
    _no_fetch_timeout(mesh, gw)
