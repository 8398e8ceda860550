"""The mesh CA: its root is kept privately and reused, workload certificates carry exactly
their SPIFFE identity, chain to the root, and are re-issued at half their life."""

from __future__ import annotations

import datetime
import stat
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from meshgate.model.proxy import Proxy
from meshgate.security import sds
from meshgate.security.ca import MeshCA, spiffe_id

GW_ID = "spiffe://cluster.local/ns/istio-system/sa/istio-egressgateway-service-account"


class Clock:
    def __init__(self) -> None:
        self.now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)

    def __call__(self) -> datetime.datetime:
        return self.now


def test_root_is_private_and_kept(tmp_path: Path) -> None:
    ca = MeshCA(tmp_path)
    key = tmp_path / "security" / "ca" / "root-key.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(key.parent.parent.stat().st_mode) == 0o700
    assert MeshCA(tmp_path).root_pem == ca.root_pem  # a restart trusts the same root
    assert ca.root_cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_workload_certificate_is_its_spiffe_identity(tmp_path: Path) -> None:
    ca = MeshCA(tmp_path)
    assert spiffe_id("cluster.local", "istio-system", "istio-egressgateway-service-account") == (
        GW_ID
    )
    issued = ca.workload(GW_ID)
    leaf, root = x509.load_pem_x509_certificates(issued.cert_chain)
    assert root == ca.root_cert
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [GW_ID]
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    public = ca.root_cert.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    leaf.verify_directly_issued_by(ca.root_cert)
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == datetime.timedelta(
        hours=24, minutes=1
    )


def test_reissued_at_half_life_not_before(tmp_path: Path) -> None:
    clock = Clock()
    ca = MeshCA(tmp_path, lifetime=datetime.timedelta(hours=2), clock=clock)
    first = ca.workload(GW_ID)
    clock.now += datetime.timedelta(minutes=50)
    assert ca.workload(GW_ID) is first
    clock.now += datetime.timedelta(minutes=15)  # past half of 2 h from issue
    second = ca.workload(GW_ID)
    assert second is not first and second.key != first.key
    assert second.not_after > first.not_after


def test_short_lifetimes_renew_at_half_life_from_issue(tmp_path: Path) -> None:
    """A lifetime under twice the backdating skew is renewed at half its life too: kept
    until then (not re-issued on every call), and announced by next_change (a push)."""
    clock = Clock()
    ca = MeshCA(tmp_path, lifetime=datetime.timedelta(seconds=20), clock=clock)
    start = clock.now
    first = ca.workload(GW_ID)
    assert ca.next_change(after=start) == start + datetime.timedelta(seconds=10)
    clock.now += datetime.timedelta(seconds=9)
    assert ca.workload(GW_ID) is first
    clock.now += datetime.timedelta(seconds=2)
    second = ca.workload(GW_ID)
    assert second is not first
    assert ca.next_change(after=clock.now) == clock.now + datetime.timedelta(seconds=10)


def test_sds_serves_only_what_is_referenced_and_only_the_proxys_own(tmp_path: Path) -> None:
    ca = MeshCA(tmp_path)
    gw = Proxy(kind="router", ip="10.34.0.11", pod="gw-1", namespace="istio-system",
               service_account="istio-egressgateway-service-account")  # fmt: skip
    assert sds.identity_secrets(ca, gw, "cluster.local", ["kubernetes://x"]) == []
    cert, root = sds.identity_secrets(ca, gw, "cluster.local", ["default", "ROOTCA"])
    assert cert.name == "default" and root.name == "ROOTCA"
    leaf = x509.load_pem_x509_certificates(cert.tls_certificate.certificate_chain.inline_bytes)[0]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [GW_ID]
    assert root.validation_context.trusted_ca.inline_bytes == ca.root_pem


def _roots(bundle: bytes) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(bundle)


def test_root_rotation_trusts_both_roots_across_the_switch(tmp_path: Path) -> None:
    clock = Clock()
    ca = MeshCA(tmp_path, lifetime=datetime.timedelta(hours=2), clock=clock)
    old_root = ca.root_cert
    old_cert = ca.workload(GW_ID)
    new_root = ca.rotate(
        activate_after=datetime.timedelta(seconds=5), overlap=datetime.timedelta(minutes=10)
    )
    # Phase 1: the new root is trusted everywhere before it signs anything.
    assert _roots(ca.trust_bundle()) == [old_root, new_root]
    assert ca.workload(GW_ID) is old_cert
    clock.now += datetime.timedelta(seconds=6)
    # Phase 2: the new root signs; the old one is still trusted for the overlap.
    fresh = ca.workload(GW_ID)
    assert fresh is not old_cert
    leaf, chain_root = x509.load_pem_x509_certificates(fresh.cert_chain)
    leaf.verify_directly_issued_by(new_root)
    assert chain_root == new_root == ca.root_cert
    assert _roots(ca.trust_bundle()) == [new_root, old_root]
    assert MeshCA(tmp_path, clock=clock).trust_bundle() == ca.trust_bundle()  # survives restart
    clock.now += datetime.timedelta(minutes=11)
    # Done: only the new root.
    assert _roots(ca.trust_bundle()) == [new_root]
    assert ca.rotation() == {}
    ca.rotate()  # another may start now


def test_one_rotation_at_a_time(tmp_path: Path) -> None:
    import pytest

    from meshgate.security.ca import RotationError

    ca = MeshCA(tmp_path)
    ca.rotate()
    with pytest.raises(RotationError):
        ca.rotate()


def _ca(name: str, issuer: tuple[ec.EllipticCurvePrivateKey, x509.Certificate] | None = None,
        ca: bool = True) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:  # fmt: skip
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    signer_key, signer = issuer if issuer else (key, None)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(signer.subject if signer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(signer_key, hashes.SHA256())
    )
    return key, cert


def _pem(*certs: x509.Certificate) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _key(key: ec.EllipticCurvePrivateKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def test_a_users_intermediate_signs_and_their_root_is_trusted(tmp_path: Path) -> None:
    from meshgate.security.ca import RotationError, install_user_ca

    root = _ca("corp root")
    inter = _ca("corp mesh intermediate", root)
    assert install_user_ca(tmp_path, _pem(inter[1]), _key(inter[0]), _pem(root[1]))
    assert not install_user_ca(tmp_path, _pem(inter[1]), _key(inter[0]), _pem(root[1]))
    ca = MeshCA(tmp_path)
    leaf, intermediate, top = x509.load_pem_x509_certificates(ca.workload(GW_ID).cert_chain)
    leaf.verify_directly_issued_by(inter[1])
    assert (intermediate, top) == (inter[1], root[1])
    assert _roots(ca.trust_bundle()) == [root[1]]
    import pytest

    with pytest.raises(RotationError, match="your own CA"):
        ca.rotate()


def test_a_bad_user_ca_is_refused_with_the_reason(tmp_path: Path) -> None:
    import pytest

    from meshgate.security.ca import UserCAError, install_user_ca

    root = _ca("corp root")
    other = _ca("someone else")
    leaf_like = _ca("not a ca", root, ca=False)
    cases = [
        ((_pem(root[1]), _key(other[0]), None), "does not belong"),
        ((_pem(leaf_like[1]), _key(leaf_like[0]), _pem(root[1])), "not a CA"),
        ((_pem(_ca("inter", root)[1]), _key(root[0]), None), "does not belong"),
        ((b"junk", b"junk", None), "cannot read"),
    ]
    for (cert, key, roots), reason in cases:
        with pytest.raises(UserCAError, match=reason):
            install_user_ca(tmp_path, cert, key, roots)
    inter = _ca("inter", root)
    with pytest.raises(UserCAError, match="not issued by"):
        install_user_ca(tmp_path, _pem(inter[1]), _key(inter[0]), _pem(other[1]))
    MeshCA(tmp_path)  # a generated root now; another CA is refused, never swapped in
    with pytest.raises(UserCAError, match="already has a CA"):
        install_user_ca(tmp_path, _pem(root[1]), _key(root[0]))
