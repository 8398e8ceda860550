"""IST0161 InvalidGatewayCredential: the Secret a Gateway names holds no usable certificate."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tests.unit.analysis.conftest import Run, codes

from meshgate.analysis import gateways
from meshgate.analysis.credentials import certificate_valid

INGRESS = """
apiVersion: v1
kind: Pod
metadata:
  name: ingress-1
  namespace: istio-system
  labels: {istio: ingressgateway}
spec:
  containers: [{name: istio-proxy, image: proxyv2}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: httpbin-gateway
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: [httpbin.example.com]
    tls: {mode: SIMPLE, credentialName: httpbin-credential}
"""
TEXT = (
    "The credential referenced by the Gateway httpbin-gateway in namespace istio-system is "
    "invalid, which can cause the traffic not to work as expected."
)


def certificate(days: tuple[int, int] = (-1, 30)) -> tuple[bytes, bytes]:
    """A self-signed certificate valid from now+days[0] to now+days[1], and its key (PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "httpbin.example.com")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + timedelta(days=days[0]))
        .not_valid_after(now + timedelta(days=days[1]))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


def secret(data: dict[str, bytes], namespace: str = "istio-system", field: str = "data") -> str:
    if field == "data":
        items = "".join(f'  {k}: "{b64(v)}"\n' for k, v in data.items())
    else:
        items = "".join(f"  {k}: {json.dumps(v.decode())}\n" for k, v in data.items())
    return f"""
---
apiVersion: v1
kind: Secret
metadata: {{name: httpbin-credential, namespace: {namespace}}}
type: kubernetes.io/tls
{field}:
{items}"""


def test_a_valid_certificate_and_key_are_clean(run: Run) -> None:
    cert, key = certificate()
    for data in ({"tls.crt": cert, "tls.key": key}, {"cert": cert, "key": key}):
        assert run(INGRESS + secret(data), gateways.gateway_secrets) == []
    # stringData counts as kube-apiserver merges it into data; MUTUAL's CA is not checked.
    string_data = secret({"tls.crt": cert, "tls.key": key}, field="stringData")
    assert run(INGRESS + string_data, gateways.gateway_secrets) == []
    mutual = INGRESS.replace("mode: SIMPLE", "mode: MUTUAL")
    assert run(mutual + secret({"tls.crt": cert, "tls.key": key}), gateways.gateway_secrets) == []


def test_secrets_without_a_usable_certificate(run: Run) -> None:
    cert, key = certificate()
    expired, expired_key = certificate((-30, -1))
    future, future_key = certificate((1, 30))
    bad = {
        "missing key": {"tls.crt": cert},
        "empty key": {"tls.crt": cert, "tls.key": b""},
        "wrong key names": {"tls.cert": cert, "tls.key": key},
        "not PEM": {"tls.crt": b"hush hush hush\n", "tls.key": key},
        "key where the cert goes": {"tls.crt": key, "tls.key": key},
        "garbage in the PEM": {
            "tls.crt": b"-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n",
            "tls.key": key,
        },
        "expired": {"tls.crt": expired, "tls.key": expired_key},
        "not yet valid": {"tls.crt": future, "tls.key": future_key},
    }
    for why, data in bad.items():
        found = run(INGRESS + secret(data), gateways.gateway_secrets)
        assert codes(found) == [("IST0161", "Gateway default/httpbin-gateway")], why
        assert found[0].text == TEXT and found[0].level.value == "Error"
        assert found[0].line == 20  # the credentialName
        assert str(found[0]).startswith("Error [IST0161] (Gateway default/httpbin-gateway ")


def test_missing_secret_is_ist0101_not_ist0161(run: Run) -> None:
    cert, key = certificate()
    found = run(
        INGRESS + secret({"tls.crt": cert, "tls.key": key}, "default"), gateways.gateway_secrets
    )
    assert [m.text for m in found] == ['Referenced credentialName not found: "httpbin-credential"']


def test_the_namespace_named_is_the_workloads(run: Run) -> None:
    cert, _key = certificate()
    moved = INGRESS.replace("namespace: istio-system", "namespace: gateways")
    found = run(moved + secret({"tls.crt": cert}, "gateways"), gateways.gateway_secrets)
    assert [m.text for m in found] == [TEXT.replace("istio-system", "gateways")]


def test_certificate_validity_window() -> None:
    cert, _ = certificate((0, 10))
    now = datetime.now(UTC)
    assert certificate_valid(cert, now + timedelta(days=5))
    assert not certificate_valid(cert, now + timedelta(days=11))
    assert not certificate_valid(cert, now - timedelta(days=1))
