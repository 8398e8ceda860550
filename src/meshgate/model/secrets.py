"""Kubernetes Secrets as TLS credentials, the way Istio reads them for ``credentialName``.

Rules of this module:
- A Secret's bytes are its ``data`` (base64) overlaid by its ``stringData`` (plain text), as
  the Kubernetes API server merges them; undecodable ``data`` values are left out.
- A certificate and key come from the generic keys ``cert``/``key`` or, failing those, the
  ``kubernetes.io/tls`` keys ``tls.crt``/``tls.key`` (Istio's extractKeyAndCert order). Both
  must be non-empty.
- A CA bundle comes from ``cacert`` or, failing that, ``ca.crt`` (Istio's extractRoot). For a
  name ending in ``-cacert`` the Secret of that exact name is tried first, then the one
  without the suffix (Istio's GetCaCert): ``foo-cacert`` is the CA of Secret ``foo``.
- Lookups are per namespace only: a proxy reads Secrets of its own namespace, never others.
- Pure: no I/O; ``SecretIndex`` is immutable once built.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from meshgate.model.fields import get, get_str

CA_SUFFIX = "-cacert"
KUBERNETES_PREFIX = "kubernetes://"

_GENERIC = ("cert", "key")
_TLS = ("tls.crt", "tls.key")
_CA_KEYS = ("cacert", "ca.crt")


@dataclass(frozen=True)
class KeyAndCert:
    cert: bytes
    key: bytes


def secret_bytes(secret: object) -> dict[str, bytes]:
    """The Secret's entries as bytes: ``data`` decoded, then ``stringData`` on top."""
    out: dict[str, bytes] = {}
    for key, value in _mapping(get(secret, "data")).items():
        try:
            out[key] = base64.b64decode(str(value), validate=True)
        except (binascii.Error, ValueError):
            continue  # the API server would have refused it; never serve garbage
    for key, value in _mapping(get(secret, "string_data")).items():
        out[key] = str(value).encode()
    return out


def _mapping(value: object) -> dict[str, object]:
    if isinstance(value, Mapping):
        return {str(k): v for k, v in value.items()}
    return {}


def key_and_cert(data: Mapping[str, bytes]) -> KeyAndCert | None:
    for cert_key, key_key in (_GENERIC, _TLS):
        cert, key = data.get(cert_key), data.get(key_key)
        if cert and key:
            return KeyAndCert(cert=cert, key=key)
    return None


def ca_bundle(data: Mapping[str, bytes]) -> bytes | None:
    for name in _CA_KEYS:
        value = data.get(name)
        if value:
            return value
    return None


def resource_name(credential: str) -> str:
    """The SDS resource name for a ``credentialName`` (``kubernetes://`` added if missing)."""
    return credential if "://" in credential else f"{KUBERNETES_PREFIX}{credential}"


@dataclass(frozen=True)
class SecretIndex:
    """Secrets by (namespace, name), decoded once per snapshot."""

    by_key: Mapping[tuple[str, str], Mapping[str, bytes]]

    @classmethod
    def build(cls, secrets: Iterable[object]) -> SecretIndex:
        index: dict[tuple[str, str], Mapping[str, bytes]] = {}
        for s in secrets:
            meta = get(s, "metadata")
            key = (get_str(meta, "namespace") or "default", get_str(meta, "name"))
            index[key] = secret_bytes(s)
        return cls(by_key=index)

    def key_and_cert(self, namespace: str, name: str) -> KeyAndCert | None:
        data = self.by_key.get((namespace, name))
        return None if data is None else key_and_cert(data)

    def ca_bundle(self, namespace: str, name: str) -> bytes | None:
        """The CA for a ``-cacert`` name: that Secret first, then the one without suffix."""
        data = self.by_key.get((namespace, name))
        if data is None and name.endswith(CA_SUFFIX):
            data = self.by_key.get((namespace, name.removesuffix(CA_SUFFIX)))
        return None if data is None else ca_bundle(data)
