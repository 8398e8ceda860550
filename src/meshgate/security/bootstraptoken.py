"""Bootstrap tokens (kubeadm's) for nodes that join, and the CA pin a joining node checks.

Rules:
- A token is ``[a-z0-9]{6}.[a-z0-9]{16}``: a public id and a secret. It is stored as
  kubeadm stores it: a Secret ``bootstrap-token-<id>`` in ``kube-system`` of type
  ``bootstrap.kubernetes.io/token`` with ``token-id``, ``token-secret``, ``expiration``
  (RFC 3339, UTC), ``usage-bootstrap-authentication``/``-signing`` and ``auth-extra-groups``
  (base64 in ``data``, as any Secret). The default lifetime is kubeadm's, 24 h.
- A presented token is checked against its Secret: the secret compared in constant time,
  the expiration in the past refused (an expired token is refused even while its Secret
  is still stored, as the API server does before the token cleaner deletes it). Each
  refusal says why, without echoing the secret.
- The CA pin is kubeadm's ``--discovery-token-ca-cert-hash``: ``sha256:`` and the hex
  SHA-256 of the CA certificate's DER SubjectPublicKeyInfo.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import re
import secrets
import string
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

NAMESPACE = "kube-system"
SECRET_TYPE = "bootstrap.kubernetes.io/token"
PREFIX = "bootstrap-token-"
DEFAULT_TTL = datetime.timedelta(hours=24)
GROUPS = "system:bootstrappers:kubeadm:default-node-token"
TOKEN_RE = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
_ALPHABET = string.ascii_lowercase + string.digits


class TokenRefused(Exception):
    """A token that does not let a node join; the message says why (never the secret)."""


def generate() -> str:
    """A new random token ``id.secret``."""
    pick = secrets.choice
    return (
        "".join(pick(_ALPHABET) for _ in range(6))
        + "."
        + "".join(pick(_ALPHABET) for _ in range(16))
    )


def split(token: str) -> tuple[str, str]:
    """(id, secret); TokenRefused if it is not shaped as a bootstrap token."""
    m = TOKEN_RE.match(token.strip())
    if m is None:
        raise TokenRefused(
            "the token is not a bootstrap token (want [a-z0-9]{6}.[a-z0-9]{16}, as "
            "`meshgate token create` prints)"
        )
    return m.group(1), m.group(2)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _text(data: dict[str, Any], key: str) -> str:
    try:
        return base64.b64decode(str(data.get(key) or "")).decode()
    except (ValueError, UnicodeDecodeError):
        return ""


def rfc3339(when: datetime.datetime) -> str:
    return when.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def secret_object(
    token: str, ttl: datetime.timedelta | None, now: datetime.datetime, description: str = ""
) -> dict[str, Any]:
    """The Secret that stores `token` (``ttl`` None or zero: it never expires)."""
    token_id, token_secret = split(token)
    data = {
        "token-id": _b64(token_id),
        "token-secret": _b64(token_secret),
        "usage-bootstrap-authentication": _b64("true"),
        "usage-bootstrap-signing": _b64("true"),
        "auth-extra-groups": _b64(GROUPS),
    }
    if ttl:
        data["expiration"] = _b64(rfc3339(now + ttl))
    if description:
        data["description"] = _b64(description)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": PREFIX + token_id, "namespace": NAMESPACE},
        "type": SECRET_TYPE,
        "data": dict(sorted(data.items())),
    }


def expiration(secret: dict[str, Any]) -> datetime.datetime | None:
    raw = _text(secret.get("data") or {}, "expiration")
    if not raw:
        return None
    return datetime.datetime.fromisoformat(raw.replace("Z", "+00:00"))


def describe(secret: dict[str, Any]) -> dict[str, Any]:
    """What `token list` shows of a token's Secret (the secret part masked, as kubeadm)."""
    data = secret.get("data") or {}
    return {
        "id": _text(data, "token-id"),
        "expires": expiration(secret),
        "usages": [
            u
            for u in ("authentication", "signing")
            if _text(data, f"usage-bootstrap-{u}") == "true"
        ],
        "description": _text(data, "description"),
        "groups": _text(data, "auth-extra-groups"),
    }


def check(token: str, secret: dict[str, Any] | None, now: datetime.datetime) -> str:
    """The token's id if `secret` (its stored Secret, or None) lets it join; else
    TokenRefused saying why."""
    token_id, token_secret = split(token)
    if secret is None or secret.get("type") != SECRET_TYPE:
        raise TokenRefused(f"bootstrap token {token_id!r} is not known to the control plane")
    data = secret.get("data") or {}
    if not hmac.compare_digest(_text(data, "token-secret"), token_secret):
        raise TokenRefused(f"bootstrap token {token_id!r}: wrong secret")
    if _text(data, "usage-bootstrap-authentication") != "true":
        raise TokenRefused(f"bootstrap token {token_id!r} is not usable for authentication")
    expires = expiration(secret)
    if expires is not None and expires <= now:
        raise TokenRefused(f"bootstrap token {token_id!r} expired at {rfc3339(expires)}")
    return token_id


def ca_cert_hash(ca_pem: bytes) -> str:
    """kubeadm's pin of a CA: sha256 of its DER SubjectPublicKeyInfo."""
    cert = x509.load_pem_x509_certificate(ca_pem)
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "sha256:" + hashlib.sha256(spki).hexdigest()
