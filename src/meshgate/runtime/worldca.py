"""The simulated world's PKI: one world CA, and a server certificate per https host.

Rules:
- The CA stands in for the public CAs of the real internet. Its key and certificate live in
  the state directory (``world/ca.key`` 0600, ``world/ca.pem``) and are reused by every
  ``up``, so a CA a user saved keeps working; server certificates are issued afresh at each
  ``up`` (their names may have changed) and live beside it.
- The CA certificate is also published, world-readable, as ``world-ca.pem`` in the mesh's
  runtime directory: pods trust it (see ``pods``), and proxies (uid 1337) or users can name
  it, e.g. in a DestinationRule's ``caCertificates``.
- Keys are ECDSA P-256; names become DNS subjectAltNames, wildcards included.
- Only this module knows ``cryptography``; it is imported lazily by ``Node.up``.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from meshgate.security import pki

CA_NAME = "meshgate world CA"
CA_DAYS = 3650
LEAF_DAYS = 365


@dataclass(frozen=True)
class ServerCert:
    cert: Path
    key: Path


@dataclass(frozen=True)
class WorldPki:
    ca_cert: Path
    published_ca: Path
    servers: dict[str, ServerCert]  # by host address


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _load_or_create_ca(d: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key_path, cert_path = d / "ca.key", d / "ca.pem"
    if key_path.exists() and cert_path.exists():
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        if isinstance(key, ec.EllipticCurvePrivateKey) and cert.not_valid_after_utc > _now():
            return key, cert
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(pki.key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    pki.write_file(key_path, pki.key_pem(key), 0o600)
    pki.write_file(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return key, cert


def issue_server_cert(
    ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, names: list[str]
) -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) for a server answering to ``names``."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=LEAF_DAYS))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), pki.key_pem(key)


def ensure_world_pki(
    state_dir: Path, runtime_dir: Path, https_hosts: dict[str, list[str]]
) -> WorldPki:
    """The CA (created once) and a fresh server certificate per address in ``https_hosts``
    (address -> DNS names)."""
    d = state_dir / "world"
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    ca_key, ca_cert = _load_or_create_ca(d)
    servers: dict[str, ServerCert] = {}
    for address, host_names in sorted(https_hosts.items()):
        cert_pem, key_pem = issue_server_cert(ca_key, ca_cert, host_names)
        cert_path, key_path = d / f"{address}.pem", d / f"{address}.key"
        pki.write_file(cert_path, cert_pem, 0o644)
        pki.write_file(key_path, key_pem, 0o600)
        servers[address] = ServerCert(cert_path, key_path)
    published = runtime_dir / "world-ca.pem"
    pki.write_file(published, (d / "ca.pem").read_bytes(), 0o644)
    return WorldPki(ca_cert=d / "ca.pem", published_ca=published, servers=servers)
