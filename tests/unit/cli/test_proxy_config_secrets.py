"""``proxy-config secret``: istioctl's table, and ``-o json`` as Envoy's SecretsConfigDump in
istioctl's proto3 JSON names (the Istio egress-gateway task reads it with ``jq``)."""

from __future__ import annotations

import base64
import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from meshgate.cli.proxy_config import secret_rows, secrets_dump

T = "type.googleapis.com/envoy.admin.v3."
SECRET = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
SPIFFE = "spiffe://cluster.local/ns/istio-system/sa/istio-egressgateway-service-account"


def _pem(serial: int, san: str | None) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "meshgate")])
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=36500))
    )
    if san:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(san)]), critical=False
        )
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


DUMP: dict[str, Any] = {
    "configs": [
        {
            "@type": T + "SecretsConfigDump",
            "dynamic_active_secrets": [
                {
                    "name": "ROOTCA",
                    "version_info": "3",
                    "last_updated": "2026-12-07T05:00:00.000Z",
                    "secret": {
                        "@type": SECRET,
                        "name": "ROOTCA",
                        "validation_context": {
                            "trusted_ca": {"inline_bytes": _b64(_pem(0xAB, None))}
                        },
                    },
                },
                {
                    "name": "default",
                    "version_info": "3",
                    "last_updated": "2026-12-07T05:00:00.000Z",
                    "secret": {
                        "@type": SECRET,
                        "name": "default",
                        "tls_certificate": {
                            "certificate_chain": {"inline_bytes": _b64(_pem(0x1F2E, SPIFFE))},
                            "private_key": {"inline_bytes": _b64(b"[redacted]")},
                        },
                    },
                },
            ],
            "dynamic_warming_secrets": [
                {
                    "name": "kubernetes://client-credential",
                    "version_info": "uninitialized",
                    "last_updated": "2026-12-07T05:00:00.000Z",
                    "secret": {"@type": SECRET, "name": "kubernetes://client-credential"},
                }
            ],
        }
    ]
}


def test_table_lists_warming_then_certificates_then_the_ca() -> None:
    rows = secret_rows(DUMP)
    assert rows[0] == ["RESOURCE NAME", "TYPE", "STATUS", "VALID CERT", "SERIAL NUMBER",
                       "NOT AFTER", "NOT BEFORE"]  # fmt: skip
    assert rows[1] == ["kubernetes://client-credential", "", "WARMING", "", "", "", ""]
    assert rows[2][:5] == ["default", "Cert Chain", "ACTIVE", "true", "1f2e"]
    assert rows[2][6] == "2026-01-01T00:00:00Z"
    assert rows[3][:5] == ["ROOTCA", "CA", "ACTIVE", "true", "ab"]


def test_json_is_envoys_secrets_dump_in_istioctls_names() -> None:
    out = secrets_dump(DUMP)
    assert set(out) == {"dynamicActiveSecrets", "dynamicWarmingSecrets"}
    # The task's jq: [.dynamicActiveSecrets[] | select(.name == "default")][0]
    #   .secret.tlsCertificate.certificateChain.inlineBytes | base64 -d | openssl x509 -text
    (default,) = [s for s in out["dynamicActiveSecrets"] if s["name"] == "default"]
    pem = base64.b64decode(default["secret"]["tlsCertificate"]["certificateChain"]["inlineBytes"])
    cert = x509.load_pem_x509_certificate(pem)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.UniformResourceIdentifier) == [SPIFFE]
    assert default["secret"]["@type"] == SECRET
    assert default["versionInfo"] == "3"
    key = default["secret"]["tlsCertificate"]["privateKey"]["inlineBytes"]
    assert base64.b64decode(key) == b"[redacted]"  # Envoy's redaction, kept as it is
    assert out["dynamicWarmingSecrets"][0]["name"] == "kubernetes://client-credential"
