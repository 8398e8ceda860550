"""The mesh CA: a root kept in the state directory, and short-lived SPIFFE workload certificates.

Rules:
- The root is an ECDSA P-256 key and a self-signed CA certificate (10 years), made on first
  use in `<state dir>/security/ca/` (`root-key.pem` 0600, `root-cert.pem`; the directory
  0700), and kept: proxies that outlive a control-plane restart keep trusting it.
- A workload's identity is `spiffe://<trust domain>/ns/<namespace>/sa/<service account>`, its
  certificate's only SAN (a URI), as Istio's. Certificates are ECDSA P-256, valid from a minute
  ago (clock skew) for `lifetime` (24 h by default), and never written to disk: the control
  plane holds them and hands each proxy its own over SDS.
- A certificate is re-issued once half its lifetime has passed (Istio's default grace), so a
  proxy always has a valid one well before expiry; re-issuing changes the SDS resource and
  the next push delivers it. Nothing restarts.
- The root can be rotated (`rotate`) without losing a request: first the new root joins the
  trust bundle (`ROOTCA`) of every proxy while the old one still signs; `activate_after`
  later the new root signs every certificate anew; the old root stays in the bundle for
  `overlap` more, so peers holding certificates of either root trust each other throughout.
  The rotation's state is files beside the root (`next-root-*.pem`, `previous-root-cert.pem`,
  `rotation.json`), so a control-plane restart carries it on.
- A user's own CA (`install_user_ca`, from `meshgate up --ca-cert/--ca-key [--ca-root]`):
  their root, or an intermediate under it, signs the workload certificates in place of a
  generated root; the chain up to the root is sent with each certificate, and the roots the
  user names (or the CA itself) are the trust bundle. It is checked before it is installed
  (a CA certificate, valid now, matching its key, chaining to the roots) and never silently
  replaced: a mesh keeps the CA it started with. A user CA is not rotated by `rotate`
  (meshgate does not hold the root that would sign a successor).
- The clock is injected, so rotation is testable without waiting.
"""

from __future__ import annotations

import datetime
import itertools
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from meshgate.security import pki

DEFAULT_LIFETIME = datetime.timedelta(hours=24)
ROOT_LIFETIME = datetime.timedelta(days=3650)
SKEW = datetime.timedelta(minutes=1)

Clock = Callable[[], datetime.datetime]
SigningKey = pki.SigningKey
Root = tuple[SigningKey, x509.Certificate]


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def spiffe_id(trust_domain: str, namespace: str, service_account: str) -> str:
    return f"spiffe://{trust_domain}/ns/{namespace}/sa/{service_account or 'default'}"


@dataclass(frozen=True)
class Issued:
    identity: str
    cert_chain: bytes  # the workload certificate, then the root
    key: bytes
    not_before: datetime.datetime
    not_after: datetime.datetime

    @property
    def renew_at(self) -> datetime.datetime:
        """Half its life from when it was issued. ``not_before`` is backdated by ``SKEW``
        for peers whose clocks lag: half of the backdated span would be already past for
        a lifetime under twice the skew, and such a certificate would never be renewed on
        time (or re-issued on every call)."""
        issued = self.not_before + SKEW
        return issued + (self.not_after - issued) / 2


USER_ROOTS = "user-roots.pem"
USER_CHAIN = "user-chain.pem"


class UserCAError(ValueError):
    """A CA given at `up` that cannot sign the mesh's certificates."""


def install_user_ca(
    state_dir: Path,
    cert_pem: bytes,
    key_pem: bytes,
    roots_pem: bytes | None = None,
    *,
    now: datetime.datetime | None = None,
) -> bool:
    """Check a user's CA and make it the mesh's signer; False if it is already installed.

    `cert_pem`: the signing CA's certificate, optionally followed by the intermediates up
    to the root; `roots_pem`: the roots to trust (default: the last certificate given)."""
    now = now or _now()
    try:
        certs = x509.load_pem_x509_certificates(cert_pem)
        key = serialization.load_pem_private_key(key_pem, None)
        roots = x509.load_pem_x509_certificates(roots_pem) if roots_pem else [certs[-1]]
    except (ValueError, TypeError) as exc:
        raise UserCAError(f"cannot read the CA: {exc}") from None
    signer = certs[0]
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise UserCAError("the CA key must be an ECDSA or RSA key")
    if key.public_key().public_numbers() != signer.public_key().public_numbers():  # type: ignore[union-attr]
        raise UserCAError("the CA key does not belong to the CA certificate")
    try:
        basic = signer.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        basic = None
    if basic is None or not basic.ca:
        raise UserCAError("the certificate is not a CA (basicConstraints CA:TRUE is missing)")
    if not signer.not_valid_before_utc <= now <= signer.not_valid_after_utc:
        raise UserCAError(f"the CA is not valid now (until {signer.not_valid_after_utc})")
    chain = [*certs, *[r for r in roots if r not in certs]]
    for child, parent in itertools.pairwise(chain):
        try:
            child.verify_directly_issued_by(parent)
        except Exception:
            raise UserCAError(
                f"{child.subject.rfc4514_string()} is not issued by "
                f"{parent.subject.rfc4514_string()}"
            ) from None
    if chain[-1] not in roots:
        raise UserCAError("the chain does not end at one of the roots to trust")
    directory = state_dir / "security" / "ca"
    pem = serialization.Encoding.PEM
    wanted = signer.public_bytes(pem)
    current = directory / "root-cert.pem"
    if current.exists():
        if current.read_bytes() == wanted:
            return False
        raise UserCAError(
            f"this mesh already has a CA ({current}); a mesh keeps the CA it started with: "
            "`meshgate down` and remove that directory to start over with yours"
        )
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory.parent, 0o700)
    os.chmod(directory, 0o700)
    pki.write_file(directory / "root-key.pem", pki.key_pem(key), 0o600)
    current.write_bytes(wanted)
    # The rest of the way from the signer to the root, sent after each workload certificate.
    (directory / USER_CHAIN).write_bytes(b"".join(c.public_bytes(pem) for c in chain[1:]))
    (directory / USER_ROOTS).write_bytes(b"".join(r.public_bytes(pem) for r in roots))
    return True


class RotationError(RuntimeError):
    """A root rotation that cannot start now."""


class MeshCA:
    """Issues and caches each identity's certificate; the root lives in `state_dir`."""

    def __init__(
        self,
        state_dir: Path,
        *,
        lifetime: datetime.timedelta = DEFAULT_LIFETIME,
        clock: Clock = _now,
    ) -> None:
        self.dir = state_dir / "security" / "ca"
        self.lifetime = lifetime
        self._clock = clock
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.dir.parent, 0o700)
        os.chmod(self.dir, 0o700)
        self._key, self._cert = self._load_or_create_root("root")
        self._issued: dict[str, Issued] = {}

    @property
    def root_pem(self) -> bytes:
        """The root that signs now."""
        return self._cert.public_bytes(serialization.Encoding.PEM)

    @property
    def root_cert(self) -> x509.Certificate:
        return self._cert

    def trust_bundle(self) -> bytes:
        """Every root a proxy must trust now: the signing one (a user CA's roots), and
        during a rotation the next one (before it signs) or the previous one (while its
        certificates live on)."""
        self._advance()
        roots = self.dir / USER_ROOTS
        out = roots.read_bytes() if roots.exists() else self.root_pem
        for name in ("next-root-cert.pem", "previous-root-cert.pem"):
            path = self.dir / name
            if path.exists():
                out += path.read_bytes()
        return out

    def rotate(
        self,
        *,
        activate_after: datetime.timedelta = datetime.timedelta(seconds=5),
        overlap: datetime.timedelta | None = None,
    ) -> x509.Certificate:
        """Start a root rotation; the new root's certificate. Refused while one is under way."""
        self._advance()
        if (self.dir / USER_ROOTS).exists():
            raise RotationError(
                "the mesh uses your own CA: meshgate holds no root to sign its successor"
            )
        if (self.dir / "next-root-cert.pem").exists():
            raise RotationError("a root rotation is already under way")
        key, cert = self._new_root()
        pki.write_file(self.dir / "next-root-key.pem", pki.key_pem(key), 0o600)
        (self.dir / "next-root-cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        now = self._clock()
        state = {
            "activate_at": (now + activate_after).isoformat(),
            "overlap_seconds": (overlap or self.lifetime).total_seconds(),
        }
        (self.dir / "rotation.json").write_text(json.dumps(state))
        return cert

    def reload(self) -> None:
        """Read the signing root again from the CA directory, which another replica's
        publication changed (server/casync.py): every identity is signed anew."""
        self._advance()
        self._key, self._cert = self._load_or_create_root("root")
        self._issued.clear()

    def rotation(self) -> dict[str, str]:
        """Where a rotation stands, for `meshgate ca status` (empty: none)."""
        self._advance()
        path = self.dir / "rotation.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def next_change(self, after: datetime.datetime) -> datetime.datetime | None:
        """The first time later than ``after`` when what ``workload`` and ``trust_bundle``
        return changes with no call to ``rotate``: a cached certificate reaching half its
        life (it is then re-issued), a rotation's new root starting to sign, or its overlap
        ending. None: none to come. The control plane pushes at those times, and only then,
        for certificates (a certificate nobody asks for again never moves ``after`` back)."""
        # A tuple first: a worker thread may issue certificates meanwhile.
        held_now = tuple(self._issued.values())
        times = [h.renew_at for h in held_now]
        path = self.dir / "rotation.json"
        if path.exists():
            state = json.loads(path.read_text())
            if (self.dir / "next-root-cert.pem").exists():
                times.append(datetime.datetime.fromisoformat(state["activate_at"]))
            if state.get("previous_until"):
                times.append(datetime.datetime.fromisoformat(state["previous_until"]))
        return min((t for t in times if t > after), default=None)

    def _advance(self) -> None:
        """Move a rotation on when its time has come (called wherever roots are read)."""
        path = self.dir / "rotation.json"
        if not path.exists():
            return
        state = json.loads(path.read_text())
        now = self._clock()
        nxt = self.dir / "next-root-cert.pem"
        if nxt.exists() and now >= datetime.datetime.fromisoformat(state["activate_at"]):
            previous = self.dir / "previous-root-cert.pem"
            previous.write_bytes(self.root_pem)
            os.replace(self.dir / "next-root-key.pem", self.dir / "root-key.pem")
            os.replace(nxt, self.dir / "root-cert.pem")
            self._key, self._cert = self._load_or_create_root("root")
            self._issued.clear()  # every identity is signed anew by the new root
            state["previous_until"] = (now + datetime.timedelta(
                seconds=state["overlap_seconds"])).isoformat()  # fmt: skip
            path.write_text(json.dumps(state))
        until = state.get("previous_until")
        if until and now >= datetime.datetime.fromisoformat(until):
            (self.dir / "previous-root-cert.pem").unlink(missing_ok=True)
            path.unlink()

    def _load_or_create_root(self, stem: str) -> Root:
        key_path, cert_path = self.dir / f"{stem}-key.pem", self.dir / f"{stem}-cert.pem"
        if key_path.exists() and cert_path.exists():
            key = serialization.load_pem_private_key(key_path.read_bytes(), None)
            assert isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey)
            return key, x509.load_pem_x509_certificate(cert_path.read_bytes())
        key, cert = self._new_root()
        pki.write_file(key_path, pki.key_pem(key), 0o600)
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        os.chmod(cert_path, 0o644)
        return key, cert

    def _new_root(self) -> Root:
        key = ec.generate_private_key(ec.SECP256R1())
        now = self._clock()
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "meshgate"),
                x509.NameAttribute(NameOID.COMMON_NAME, "meshgate mesh root CA"),
            ]
        )
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - SKEW)
            .not_valid_after(now + ROOT_LIFETIME)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(pki.key_usage(ca=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        return key, cert

    def workload(self, identity: str) -> Issued:
        """The identity's current certificate: the cached one until half its life has gone."""
        self._advance()
        now = self._clock()
        held = self._issued.get(identity)
        if held is not None and now < held.renew_at:
            return held
        issued = self._issue(identity, now)
        self._issued[identity] = issued
        return issued

    def _issue(self, identity: str, now: datetime.datetime) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        not_before, not_after = now - SKEW, now + self.lifetime
        chain = self.sign(
            key.public_key(), [x509.UniformResourceIdentifier(identity)], not_before, not_after
        )
        return Issued(identity, chain, pki.key_pem(key), not_before, not_after)

    def sign(
        self,
        public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
        sans: list[x509.GeneralName],
        not_before: datetime.datetime,
        not_after: datetime.datetime,
        subject: x509.Name | None = None,
    ) -> bytes:
        """A leaf certificate for `public_key` (whose private key stays with its owner: a
        joining node's CSR), with `sans`; the PEM chain up to the root."""
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject or x509.Name([]))
            .issuer_name(self._cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(
                x509.SubjectAlternativeName(sans),
                critical=subject is None,  # an empty subject: the SAN is the identity
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(pki.key_usage(ca=False), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), False
            )
            .sign(self._key, hashes.SHA256())
        )
        chain = cert.public_bytes(serialization.Encoding.PEM) + self.root_pem
        intermediates = self.dir / USER_CHAIN
        if intermediates.exists():  # a user's intermediate: the rest of the way to the root
            chain += intermediates.read_bytes()
        return chain
