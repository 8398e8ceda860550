"""Kubernetes Secrets read as Istio reads them for credentialName (model.secrets)."""

from __future__ import annotations

import base64

from tests.golden.seedworld import decode

from meshgate.model.secrets import SecretIndex, resource_name, secret_bytes
from meshgate.model.snapshot import Snapshot


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


SECRETS = f"""apiVersion: v1
kind: Secret
metadata: {{name: tls-one, namespace: istio-system}}
type: kubernetes.io/tls
data: {{tls.crt: {_b64("TLS-CERT")}, tls.key: {_b64("TLS-KEY")}, ca.crt: {_b64("TLS-CA")}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: generic, namespace: istio-system}}
stringData: {{cert: G-CERT, key: G-KEY, cacert: G-CA, tls.crt: OTHER, tls.key: OTHER}}
---
apiVersion: v1
kind: Secret
metadata: {{name: generic-cacert, namespace: istio-system}}
stringData: {{cacert: SEPARATE-CA}}
---
apiVersion: v1
kind: Secret
metadata: {{name: tls-one, namespace: default}}
stringData: {{tls.crt: DEFAULT-CERT, tls.key: DEFAULT-KEY}}
---
apiVersion: v1
kind: Secret
metadata: {{name: half, namespace: istio-system}}
stringData: {{tls.crt: ONLY-CERT, tls.key: ""}}
"""


def _index() -> SecretIndex:
    return Snapshot.build(decode(SECRETS, "secrets.yaml")).secrets


def test_data_is_base64_and_string_data_wins() -> None:
    secret = {"data": {"a": _b64("from-data"), "b": _b64("kept"), "bad": "%%%"}}
    secret["stringData"] = {"a": "from-string-data"}
    assert secret_bytes(secret) == {"a": b"from-string-data", "b": b"kept"}


def test_key_and_cert_generic_keys_first_then_tls_keys() -> None:
    index = _index()
    generic = index.key_and_cert("istio-system", "generic")
    assert generic is not None and (generic.cert, generic.key) == (b"G-CERT", b"G-KEY")
    tls = index.key_and_cert("istio-system", "tls-one")
    assert tls is not None and (tls.cert, tls.key) == (b"TLS-CERT", b"TLS-KEY")
    assert index.key_and_cert("istio-system", "half") is None  # an empty key is no key
    assert index.key_and_cert("istio-system", "nothing") is None


def test_namespaces_are_separate() -> None:
    pair = _index().key_and_cert("default", "tls-one")
    assert pair is not None and pair.cert == b"DEFAULT-CERT"
    assert _index().ca_bundle("default", "tls-one-cacert") is None  # no CA in that one


def test_ca_from_own_secret_then_from_the_unsuffixed_one() -> None:
    index = _index()
    assert index.ca_bundle("istio-system", "generic-cacert") == b"SEPARATE-CA"
    assert index.ca_bundle("istio-system", "tls-one-cacert") == b"TLS-CA"
    assert index.ca_bundle("istio-system", "missing-cacert") is None


def test_resource_name_adds_the_kubernetes_scheme_once() -> None:
    assert resource_name("cnn-ca") == "kubernetes://cnn-ca"
    assert resource_name("kubernetes://cnn-ca") == "kubernetes://cnn-ca"
