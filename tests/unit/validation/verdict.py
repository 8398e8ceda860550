"""Decode and validate one Istio resource written as a YAML ``spec``, as the CLI would.

Rules: the verdict is Istio's: accepted when neither decoding nor validation reports an
error (warnings allowed). Cases are written as flow-style YAML specs so that a table of
them reads like Istio's own test tables.
"""

from __future__ import annotations

import textwrap

from meshgate.api.decode import decode_text
from meshgate.api.problems import Problem
from meshgate.validation import validate_all

API_VERSIONS = {
    "ServiceEntry": "networking.istio.io/v1",
    "Gateway": "networking.istio.io/v1",
    "VirtualService": "networking.istio.io/v1",
    "DestinationRule": "networking.istio.io/v1",
    "Sidecar": "networking.istio.io/v1",
    "AuthorizationPolicy": "security.istio.io/v1",
    "PeerAuthentication": "security.istio.io/v1",
    "RequestAuthentication": "security.istio.io/v1beta1",
}


def document(kind: str, spec: str, *, name: str = "foo", extra_meta: str = "") -> str:
    body = textwrap.indent(textwrap.dedent(spec).strip(), "  ")
    meta = f"  name: {name}\n  namespace: bar\n"
    if extra_meta:
        meta += textwrap.indent(textwrap.dedent(extra_meta).strip(), "  ") + "\n"
    return f"apiVersion: {API_VERSIONS[kind]}\nkind: {kind}\nmetadata:\n{meta}spec:\n{body}\n"


def problems(kind: str, spec: str, **kw: str) -> list[Problem]:
    result = decode_text(document(kind, spec, **kw), "case.yaml")
    return result.problems + validate_all(result.documents)


def error_codes(kind: str, spec: str, **kw: str) -> set[str]:
    return {p.code for p in problems(kind, spec, **kw) if p.is_error}
