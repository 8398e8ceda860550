"""Decode messages: resources named as validation names them, plain type wording, and
``.json`` files read as strict JSON with lines."""

from __future__ import annotations

import json

import pytest

from meshgate.api.decode import decode_text
from meshgate.api.yamlsource import SourceDocument, SourceError, iter_json_documents
from meshgate.validation import validate_all

SE_HEAD = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: x
"""


def test_spec_null_is_a_plain_mapping_error() -> None:
    result = decode_text(SE_HEAD + "spec: null\n", "se.yaml")
    [p] = result.problems
    assert (p.code, p.line, p.field) == ("MG0007", 5, "spec")
    assert p.message == "expected a mapping, got null"
    assert "ServiceEntrySpec" not in str(p) and "None" not in str(p)


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        ("spec: [a]", "spec", "expected a mapping, got list"),
        ("spec: {hosts: a.com}", "spec.hosts", "expected a list, got string 'a.com'"),
        ("spec: {hosts: [a], ports: [7]}", "spec.ports[0]", "expected a mapping, got number 7"),
        (
            "spec: {hosts: [a], ports: [{number: null, name: h}]}",
            "spec.ports[0].number",
            "input should be a valid integer, got null",
        ),
    ],
)
def test_type_errors_name_what_was_written(spec: str, field: str, message: str) -> None:
    [p] = [p for p in decode_text(SE_HEAD + spec + "\n").problems if p.field == field]
    assert p.message == message


def test_decode_and_validation_name_a_resource_the_same_way() -> None:
    # One document fails to decode, the other decodes and fails validation: both must say
    # "ServiceEntry default/x", though neither document wrote a namespace.
    bad_type = SE_HEAD + "spec: {hosts: [a.com], ports: [{number: x, name: h, protocol: HTTP}]}\n"
    bad_value = SE_HEAD + "spec: {hosts: [a.com], ports: [{number: 0, name: h, protocol: HTTP}]}\n"
    decoded = decode_text(bad_type)
    validated = validate_all(decode_text(bad_value).documents)
    assert decoded.problems and validated
    assert {p.resource for p in decoded.problems + validated} == {"ServiceEntry default/x"}
    # With -n, the namespace the document would get; cluster-scoped kinds have none.
    in_ns = decode_text(bad_type, namespace="prod").problems
    assert {p.resource for p in in_ns} == {"ServiceEntry prod/x"}
    mesh = "apiVersion: meshgate.io/v1alpha1\nkind: MeshConfig\nmetadata: {name: default}\n"
    assert {p.resource for p in decode_text(mesh + "spec: []\n").problems} == {"MeshConfig default"}
    written = bad_type.replace("  name: x\n", "  name: x\n  namespace: other\n")
    assert {p.resource for p in decode_text(written, namespace="prod").problems} == {
        "ServiceEntry other/x"
    }


JSON_SE = """{
  "apiVersion": "networking.istio.io/v1",
  "kind": "ServiceEntry",
  "metadata": {"name": "j"},
  "spec": {
    "hosts": ["a.com"],
    "ports": [{"number": "80", "name": "http", "protocol": "HTTP"}]
  }
}
"""


def test_json_file_with_a_trailing_comma_is_refused_with_its_line() -> None:
    text = JSON_SE.replace('"HTTP"}]', '"HTTP"},]')
    result = decode_text(text, "se.json")
    [p] = result.problems
    assert (p.code, p.line) == ("MG0001", 7)
    assert p.message.startswith("invalid JSON: trailing comma before ']'")
    assert not result.documents
    # The same text in a YAML file is a flow sequence, which allows it (as kubectl does).
    assert [q.field for q in decode_text(text, "se.yaml").problems] == ["spec.ports[0].number"]


@pytest.mark.parametrize(
    ("text", "line", "start"),
    [
        ('{"a": 1,}', 1, "invalid JSON: trailing comma before '}'"),
        ('{\n  "a": 1 // note\n}', 2, "invalid JSON: Expecting ',' delimiter"),
        ("{'a': 1}", 1, "invalid JSON: Expecting property name"),
        ('{\n"a": NaN}', 1, "invalid JSON: NaN is not a JSON value"),
        ('{"a": 1} x', 1, "invalid JSON: Expecting value"),
    ],
)
def test_strict_json_errors(text: str, line: int, start: str) -> None:
    [*_, last] = list(iter_json_documents(text))
    assert isinstance(last, SourceError)
    assert last.message.startswith(start), last.message
    assert last.line == line


def test_json_fields_have_lines_and_duplicates_are_reported() -> None:
    result = decode_text(JSON_SE, "se.json")
    [p] = result.problems
    assert (p.field, p.line, p.resource) == ("spec.ports[0].number", 7, "ServiceEntry default/j")
    assert p.message == "input should be a valid integer, got string '80'"
    dup = JSON_SE.replace('"hosts": ["a.com"],', '"hosts": ["a.com"],\n    "hosts": ["b.com"],')
    found = [(q.code, q.line) for q in decode_text(dup, "se.json").problems]
    assert ("MG0010", 7) in found


def test_json_stream_of_values_and_numbers_as_json_reads_them() -> None:
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}
    text = json.dumps(ns) + "\n" + json.dumps({**ns, "metadata": {"name": "b"}}, indent=2)
    docs = list(iter_json_documents(text))
    assert all(isinstance(d, SourceDocument) for d in docs)
    assert [d.line for d in docs if isinstance(d, SourceDocument)] == [1, 2]
    result = decode_text(text, "ns.json")
    assert result.ok and [d.resource.name for d in result.documents] == ["a", "b"]
    assert [d.line for d in result.documents] == [1, 2]
    # JSON's 1e3 is a number (YAML 1.1 would read it as a string).
    [value] = list(iter_json_documents('{"n": 1e3, "s": "\\u00e9\\/"}'))
    assert isinstance(value, SourceDocument) and value.value == {"n": 1000.0, "s": "é/"}
