"""Is a Gateway's TLS Secret usable? Istio's ``isValidSecret``, for IST0161.

Rules of this module (istio/istio ``pkg/config/analysis/analyzers/gateway/secret.go``,
``pilot/pkg/credentials/kube/secrets.go`` ``ExtractCertInfo`` and ``pilot/pkg/xds/sds.go``
``ValidateCertificate``, read at commit 86c9f01fd735fb01d8192f5bcaf0d424afb7f14c):
- The certificate is ``cert`` when both ``cert`` and ``key`` are non-empty, else
  ``tls.crt`` when both ``tls.crt`` and ``tls.key`` are; a Secret with neither pair is
  invalid. The CA (``cacert``/``ca.crt``, for MUTUAL) is not checked, as in Istio.
- The certificate's first PEM block (of any type) must hold X.509 certificates, every one
  valid now (not expired, not yet to come).
- ``data`` values are base64 and ``stringData`` values text; ``stringData`` wins for a key
  in both, as kube-apiserver merges them on write (Istio's offline analysis reads ``data``
  only; meshgate's store may hold either form).
"""

from __future__ import annotations

import base64
import binascii
import re
import warnings
from datetime import UTC, datetime

from cryptography import x509

from meshgate.api.kinds.kubernetes import Secret

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.DOTALL)
CERT_PAIRS = (("cert", "key"), ("tls.crt", "tls.key"))


def secret_data(secret: Secret) -> dict[str, bytes]:
    """The Secret's values as bytes, ``data`` decoded and ``stringData`` laid over it."""
    out: dict[str, bytes] = {}
    for key, value in (secret.data or {}).items():
        try:
            out[key] = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            out[key] = b""  # not base64: the schema analyzer reports it; unusable here
    for key, text in (secret.string_data or {}).items():
        out[key] = text.encode()
    return out


def server_certificate(data: dict[str, bytes]) -> bytes | None:
    """``ExtractCertInfo``: the certificate of the first pair with both values set."""
    for cert, key in CERT_PAIRS:
        if data.get(cert) and data.get(key):
            return data[cert]
    return None


def certificate_valid(pem: bytes, now: datetime | None = None) -> bool:
    """``ValidateCertificate``: the first PEM block parses as certificates, all valid now."""
    block = _PEM_BLOCK.search(pem)
    if block is None:
        return False
    body = b"".join(line for line in block.group(2).splitlines() if b":" not in line)
    try:
        der = base64.b64decode(body, validate=False)
        with warnings.catch_warnings():
            # A non-positive serial number is only deprecated (Go's parser accepts zero).
            warnings.simplefilter("ignore")
            cert = x509.load_der_x509_certificate(der)
    except (binascii.Error, ValueError):
        return False
    moment = now or datetime.now(UTC)
    return cert.not_valid_before_utc <= moment <= cert.not_valid_after_utc


def valid_gateway_secret(secret: Secret, now: datetime | None = None) -> bool:
    cert = server_certificate(secret_data(secret))
    return cert is not None and certificate_valid(cert, now)
