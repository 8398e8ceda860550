"""The world's PKI: a stable CA, server certificates that verify against it for the host's
names, and an https world listener that serves them."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from meshgate.runtime.world import envoy_bootstrap, load_world
from meshgate.runtime.worldca import ensure_world_pki


def _verify(ca_pem: bytes, leaf_pem: bytes, name: str) -> None:
    store = Store([x509.load_pem_x509_certificate(ca_pem)])
    verifier = PolicyBuilder().store(store).build_server_verifier(x509.DNSName(name))
    verifier.verify(x509.load_pem_x509_certificate(leaf_pem), [])


def test_ca_is_stable_and_private(tmp_path: Path) -> None:
    state, run = tmp_path / "state", tmp_path / "run"
    run.mkdir()
    first = ensure_world_pki(state, run, {})
    again = ensure_world_pki(state, run, {})
    assert first.ca_cert.read_bytes() == again.ca_cert.read_bytes()
    assert stat.S_IMODE((state / "world" / "ca.key").stat().st_mode) == 0o600
    assert stat.S_IMODE(first.published_ca.stat().st_mode) == 0o644
    assert first.published_ca.read_bytes() == first.ca_cert.read_bytes()
    ca = x509.load_pem_x509_certificate(first.ca_cert.read_bytes())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)


def test_server_cert_verifies_for_its_names_only(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    pki = ensure_world_pki(tmp_path / "s", run, {"198.51.100.10": ["aliyun.com", "*.aliyun.com"]})
    server = pki.servers["198.51.100.10"]
    ca = pki.ca_cert.read_bytes()
    leaf = server.cert.read_bytes()
    _verify(ca, leaf, "aliyun.com")
    _verify(ca, leaf, "www.aliyun.com")
    with pytest.raises(VerificationError):
        _verify(ca, leaf, "example.com")
    assert stat.S_IMODE(server.key.stat().st_mode) == 0o600


def test_https_listener_has_tls_and_needs_a_cert(tmp_path: Path) -> None:
    world = load_world("demo")
    assert "198.51.100.10" in world.https_hosts()
    with pytest.raises(ValueError, match="no certificate"):
        envoy_bootstrap(world, Path("/run/x.sock"))
    certs = {a: (tmp_path / f"{a}.pem", tmp_path / f"{a}.key") for a in world.https_hosts()}
    boot = envoy_bootstrap(world, Path("/run/x.sock"), certs)
    by_name = {lst["name"]: lst for lst in boot["static_resources"]["listeners"]}
    tls = by_name["world_198.51.100.10_443"]["filter_chains"][0]["transport_socket"]
    chain = tls["typed_config"]["common_tls_context"]["tls_certificates"][0]
    assert chain["certificate_chain"]["filename"].endswith("198.51.100.10.pem")
    assert "transport_socket" not in by_name["world_198.51.100.10_80"]["filter_chains"][0]
