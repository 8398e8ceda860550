"""Random documents shaped like the six Istio kinds give problems, never exceptions."""

# Case tables keep each YAML case on one line, like Istio's test tables.
# ruff: noqa: E501

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import example, given
from hypothesis import strategies as st
from tests.property.editor_lines import line_count
from tests.unit.validation.verdict import API_VERSIONS

from meshgate.api.decode import decode_text
from meshgate.validation import validate_all

FIELDS = [
    "hosts", "ports", "number", "name", "protocol", "resolution", "endpoints", "address",
    "servers", "port", "tls", "mode", "http", "route", "destination", "host", "match", "uri",
    "regex", "prefix", "exact", "weight", "egress", "ingress", "rules", "from", "to", "when",
    "source", "operation", "key", "values", "action", "provider", "subsets", "trafficPolicy",
    "gateways", "timeout", "headers", "bind", "exportTo", "selector", "matchLabels", "paths",
]  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["", "*", "a.com", "*.a.com", "ns/a.com", "10.0.0.0/8", "5s", "[", "(?=x)",
                     "HTTP", "TLS", "DNS", "STATIC", "SIMPLE", "DENY", "CUSTOM", "unix:///a"]),
    st.text(max_size=12),
)  # fmt: skip
VALUES: st.SearchStrategy[Any] = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), inner, max_size=4),
    ),
    max_leaves=25,
)


@given(kind=st.sampled_from(sorted(API_VERSIONS)), spec=VALUES)
def test_random_documents_never_raise(kind: str, spec: Any) -> None:
    doc = {
        "apiVersion": API_VERSIONS[kind],
        "kind": kind,
        "metadata": {"name": "foo", "namespace": "bar"},
        "spec": spec,
    }
    text = yaml.safe_dump(doc)
    result = decode_text(text, "fuzz.yaml")
    problems = result.problems + validate_all(result.documents)
    assert all(p.message for p in problems)
    assert all(p.line is None or 1 <= p.line <= line_count(text) for p in problems)


# Any code point, lone surrogates included (st.text leaves them out unless asked).
@given(text=st.text(st.characters(exclude_categories=()), max_size=200))
@example(text="²")  # a Unicode digit that int() refuses: once crashed the decoder
@example(text="port: ³\n")
def test_random_text_never_raises(text: str) -> None:
    result = decode_text(text, "fuzz.yaml")
    last = line_count(text)
    for problem in result.problems + validate_all(result.documents):
        assert problem.line is None or 1 <= problem.line <= last, (problem, last)


BASES: dict[str, dict[str, Any]] = {
    "ServiceEntry": {
        "hosts": ["a.com"], "resolution": "DNS", "addresses": ["10.0.0.1"],
        "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}],
        "endpoints": [{"address": "b.com", "ports": {"http": 8080}}],
    },
    "Gateway": {
        "selector": {"istio": "egressgateway"},
        "servers": [{"hosts": ["a.com"], "port": {"number": 443, "name": "tls", "protocol": "TLS"},
                     "tls": {"mode": "SIMPLE", "credentialName": "c"}}],
    },
    "VirtualService": {
        "hosts": ["a.com"], "gateways": ["mesh", "ns/gw"],
        "http": [{"match": [{"uri": {"prefix": "/"}, "headers": {"x": {"regex": "a"}}}],
                  "route": [{"destination": {"host": "a.com", "port": {"number": 80}},
                             "weight": 100}],
                  "timeout": "5s", "retries": {"attempts": 2}}],
        "tls": [{"match": [{"sniHosts": ["a.com"]}], "route": [{"destination": {"host": "a.com"}}]}],
    },
    "DestinationRule": {
        "host": "a.com", "subsets": [{"name": "v1", "labels": {"v": "1"}}],
        "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"},
                          "connectionPool": {"tcp": {"maxConnections": 1}},
                          "loadBalancer": {"simple": "ROUND_ROBIN"}},
    },
    "Sidecar": {
        "egress": [{"port": {"number": 80, "protocol": "HTTP"}, "hosts": ["./*"]},
                   {"hosts": ["istio-egress/*"]}],
        "outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"},
    },
    "AuthorizationPolicy": {
        "action": "DENY",
        "rules": [{"from": [{"source": {"principals": ["a"]}}],
                   "to": [{"operation": {"ports": ["80"], "paths": ["/a/{*}"]}}],
                   "when": [{"key": "source.ip", "values": ["10.0.0.0/8"]}]}],
    },
}  # fmt: skip


def _leaf_paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [path] + [p for k, v in value.items() for p in _leaf_paths(v, (*path, k))]
    if isinstance(value, list):
        return [path] + [p for i, v in enumerate(value) for p in _leaf_paths(v, (*path, i))]
    return [path]


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _replace(value[head], rest, new)}
    copy = list(value)
    copy[head] = _replace(copy[head], rest, new)
    return copy


@given(kind=st.sampled_from(sorted(BASES)), data=st.data())
def test_mutated_valid_documents_never_raise(kind: str, data: st.DataObject) -> None:
    base = BASES[kind]
    path = data.draw(st.sampled_from(_leaf_paths(base)))
    spec = _replace(base, path, data.draw(VALUES))
    doc = {"apiVersion": API_VERSIONS[kind], "kind": kind,
           "metadata": {"name": "foo", "namespace": "bar"}, "spec": spec}  # fmt: skip
    result = decode_text(yaml.safe_dump(doc), "fuzz.yaml")
    for problem in result.problems + validate_all(result.documents):
        assert problem.message and problem.code


def test_bases_are_valid() -> None:
    for kind, spec in BASES.items():
        doc = {"apiVersion": API_VERSIONS[kind], "kind": kind,
               "metadata": {"name": "foo", "namespace": "bar"}, "spec": spec}  # fmt: skip
        result = decode_text(yaml.safe_dump(doc), "base.yaml")
        errors = [p for p in result.problems + validate_all(result.documents) if p.is_error]
        assert not errors, (kind, errors)
