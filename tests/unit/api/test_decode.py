"""Decoding YAML into typed resources: every problem with its code, field path and line."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml

from meshgate.api.decode import DecodeResult, decode_object, decode_paths, decode_text
from meshgate.api.kinds.istio_networking import ServiceEntry, VirtualService
from meshgate.api.kinds.kubernetes import Deployment, Service
from meshgate.api.yamlsource import MAX_EXPANDED_NODES

SE = """\
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata:
  name: external-svc-http
spec:
  hosts:
  - aliyun.com
  location: MESH_EXTERNAL
  ports:
  - number: 80
    name: http
    protocol: HTTP
  resolution: DNS
"""


def problems(result: DecodeResult) -> list[tuple[str | None, int | None, str | None]]:
    return [(p.code, p.line, p.field or None) for p in result.problems]


def test_a_valid_document_decodes_with_defaults() -> None:
    result = decode_text(SE, "se.yaml")
    assert result.ok and not result.problems
    [doc] = result.documents
    assert isinstance(doc.resource, ServiceEntry)
    assert (doc.file, doc.line) == ("se.yaml", 1)
    assert doc.resource.key == (
        "networking.istio.io",
        "ServiceEntry",
        "default",
        "external-svc-http",
    )
    assert doc.resource.spec.ports is not None and doc.resource.spec.ports[0].number == 80
    assert doc.line_of(("spec", "ports", 0, "protocol")) == 12


def test_unknown_fields_are_rejected_with_path_and_line() -> None:
    text = SE.replace("    protocol: HTTP\n", "    protocol: HTTP\n    protocl: TCP\n")
    text += "  extra:\n    deep: 1\n"
    result = decode_text(text, "se.yaml")
    assert not result.ok and not result.documents
    assert problems(result) == [
        ("MG0005", 13, "spec.ports[0].protocl"),
        ("MG0005", 15, "spec.extra"),
    ]
    assert all(p.resource == "ServiceEntry default/external-svc-http" for p in result.problems)
    assert all(p.file == "se.yaml" for p in result.problems)


def test_every_problem_of_every_document_at_once() -> None:
    vs = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: v, namespace: web}
spec:
  hosts: [a.com]
  http:
  - route:
    - destination:
        port: {number: 80}
      weight: "100"
"""
    bad_se = SE.replace("MESH_EXTERNAL", "MESH_EXT").replace("  hosts:\n  - aliyun.com\n", "")
    result = decode_text(vs + "---\n" + bad_se + "---\n" + SE, "all.yaml")
    assert problems(result) == [
        ("MG0006", 8, "spec.http[0].route[0].destination.host"),
        ("MG0007", 10, "spec.http[0].route[0].weight"),
        ("MG0006", 16, "spec.hosts"),  # a missing field: the line of its parent
        ("MG0008", 17, "spec.location"),
    ]
    assert "got string '100'" in result.problems[1].message
    assert "MESH_EXTERNAL" in result.problems[3].message
    # The valid third document still decodes; the invalid ones yield nothing.
    assert [d.line for d in result.documents] == [24]


def test_strict_types_never_coerce() -> None:
    result = decode_text(SE.replace("number: 80", 'number: "80"'), "se.yaml")
    assert problems(result) == [("MG0007", 10, "spec.ports[0].number")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("kind: X\n", [("MG0003", 1, "apiVersion")]),
        ("- a\n- b\n", [("MG0002", 1, None)]),
        (
            "apiVersion: networking.istio.io/v9\nkind: ServiceEntry\nmetadata: {name: x}\n",
            [("MG0004", 2, "kind")],
        ),
        ("apiVersion: foo/v1\nkind: Bar\n", [("MG0004", 2, "kind")]),
        ("apiVersion: v1\nkind: Namespace\nmetadata: {name: n\n", [("MG0001", 3, None)]),
        (
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n  name: b\n",
            [("MG0010", 5, None)],
        ),
        ("apiVersion: v1\nkind: Namespace\nmetadata: !!set {a}\n", [("MG0001", 3, None)]),
    ],
)
def test_problem_codes_and_lines(text: str, expected: list[tuple[str, int, str | None]]) -> None:
    assert problems(decode_text(text, "x.yaml")) == expected


@pytest.mark.parametrize(
    "value", ['!!int ""', "!!bool x", "!!float .", "!!int 0x", "!!binary aGk=", "!!python/none x"]
)
def test_odd_explicit_tags_are_problems(value: str) -> None:
    text = f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: x}}\ndata:\n  a: {value}\n"
    assert problems(decode_text(text)) == [("MG0001", 5, None)]


def test_unserved_version_names_the_served_ones() -> None:
    text = "apiVersion: networking.istio.io/v9\nkind: ServiceEntry\nmetadata: {name: x}\n"
    [p] = decode_text(text).problems
    assert "networking.istio.io/v1beta1" in p.message and "v1alpha3" in p.message


def test_syntax_error_keeps_the_documents_before_it() -> None:
    result = decode_text(SE + "---\nkey: [unclosed\n", "s.yaml")
    assert len(result.documents) == 1
    assert problems(result) == [("MG0001", 15, None)]


def test_empty_documents_and_comments_are_skipped() -> None:
    result = decode_text("---\n# nothing\n---\n" + SE + "---\n\n---\n", "e.yaml")
    assert result.ok and len(result.documents) == 1
    assert result.documents[0].line == 4


def test_list_items_decode_with_their_own_lines() -> None:
    body = "\n".join("  " + line for line in SE.splitlines())
    text = "apiVersion: v1\nkind: List\nitems:\n-" + body[1:] + "\n- {apiVersion: v1, kind: Pod}\n"
    result = decode_text(text, "l.yaml")
    assert [d.resource.kind for d in result.documents] == ["ServiceEntry"]
    assert result.documents[0].line == 4
    assert result.documents[0].line_of(("spec", "resolution")) == 16
    assert problems(result) == [("MG0006", 17, "spec")]  # the Pod item has no spec


def test_namespace_defaults_and_cluster_scope() -> None:
    assert decode_text(SE).documents[0].resource.namespace == "default"
    assert decode_text(SE, namespace="web").documents[0].resource.namespace == "web"
    written = SE.replace("  name: external-svc-http\n", "  name: x\n  namespace: mine\n")
    assert decode_text(written, namespace="web").documents[0].resource.namespace == "mine"
    ns = decode_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: n, namespace: x}\n")
    assert ns.documents[0].resource.metadata.namespace is None
    assert ns.documents[0].resource.to_wire()["metadata"] == {"name": "n"}


def test_kubernetes_defaults_and_unknown_fields_are_kept() -> None:
    text = """\
apiVersion: v1
kind: Service
metadata:
  name: s
  finalizers: [x]
spec:
  ports:
  - port: 80
  sessionAffinity: None
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
spec:
  selector: {matchLabels: {app: d}}
  strategy: {type: Recreate}
  template:
    metadata: {labels: {app: d}}
    spec:
      containers:
      - name: c
        image: busybox
        resources: {limits: {cpu: "1"}}
"""
    result = decode_text(text)
    assert result.ok, result.problems
    svc, deploy = (d.resource for d in result.documents)
    assert isinstance(svc, Service) and isinstance(deploy, Deployment)
    wire = svc.to_wire()
    assert wire["spec"]["ports"] == [{"port": 80, "targetPort": 80, "protocol": "TCP"}]
    assert wire["spec"]["sessionAffinity"] == "None"
    assert wire["metadata"]["finalizers"] == ["x"]
    dwire = deploy.to_wire()
    assert dwire["spec"]["replicas"] == 1
    assert dwire["spec"]["strategy"] == {"type": "Recreate"}
    assert dwire["spec"]["template"]["spec"]["containers"][0]["resources"] == {
        "limits": {"cpu": "1"}
    }


def test_yaml_scalars_follow_yaml_1_1_but_timestamps_stay_strings() -> None:
    text = (
        SE.replace("  resolution: DNS\n", "  resolution: DNS\n")
        + "status:\n  a: on\n  b: 2023-12-14\n  c: 0x10\n  d: ~\n"
    )
    [doc] = decode_text(text).documents
    assert doc.resource.status == {"a": True, "b": "2023-12-14", "c": 16, "d": None}


def test_merge_keys_and_aliases() -> None:
    text = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: m}
spec:
  hosts: [a.com]
  ports:
  - &http {number: 80, name: http, protocol: HTTP}
  - <<: *http
    number: 8080
    name: http-alt
"""
    [doc] = decode_text(text).documents
    assert isinstance(doc.resource, ServiceEntry)
    ports = doc.resource.spec.ports or []
    assert [(p.number, p.name, p.protocol) for p in ports] == [
        (80, "http", "HTTP"),
        (8080, "http-alt", "HTTP"),
    ]


def test_alias_bombs_and_recursion_are_refused() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for i in range(1, 7):
        bomb += (
            f"{'abcdefg'[i]}: &{'abcdefg'[i]} [" + ", ".join([f"*{'abcdefg'[i - 1]}"] * 10) + "]\n"
        )
    result = decode_text(bomb)
    assert problems(result) == [("MG0001", 1, None)]
    assert str(MAX_EXPANDED_NODES) in result.problems[0].message
    recursive = decode_text("&a [*a]\n")
    assert problems(recursive)[0][0] == "MG0001"


def test_decode_object_wants_exactly_one() -> None:
    resource, found = decode_object(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}}
    )
    assert resource is not None and not found
    listing = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in "ab"],
    }
    resource, found = decode_object(listing)
    assert resource is None and [p.code for p in found] == ["MG0002"]


def test_decode_paths_reads_directories_files_and_stdin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "b.yaml").write_text(SE.replace("external-svc-http", "b"))
    (tmp_path / "a.yml").write_text(SE.replace("external-svc-http", "a"))
    (tmp_path / "c.json").write_text(
        '{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "c"}}'
    )
    (tmp_path / "notes.txt").write_text("not: [yaml")
    (tmp_path / "empty").mkdir()
    monkeypatch.setattr("sys.stdin", io.StringIO(SE.replace("external-svc-http", "s")))
    result = decode_paths(
        [str(tmp_path), "-", str(tmp_path / "missing.yaml"), str(tmp_path / "empty")]
    )
    assert [d.resource.name for d in result.documents] == ["a", "b", "c", "s"]
    assert [d.file for d in result.documents][-1] == "<stdin>"
    assert [(p.code, p.is_error) for p in result.problems] == [
        ("MG0009", True),
        ("MG0009", False),
    ]
    assert result.problems[0].file.endswith("missing.yaml")


def test_a_file_that_is_not_utf8_names_the_line_of_its_first_bad_byte(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(SE.replace("name: http", "name: caf\xe9").encode("latin-1"))
    [p] = decode_paths([str(path)]).problems
    assert (p.code, p.line) == ("MG0009", 11)
    assert p.message == "cannot read: not UTF-8 (byte 0xe9: invalid continuation byte)"
    # A lone surrogate written out as UTF-8 would be (CESU-8): no UTF-8 either.
    path.write_bytes(b"a: 1\rb: \xed\xa0\x80\n")
    [p] = decode_paths([str(path)]).problems
    assert (p.code, p.line) == ("MG0009", 2)


def test_wire_form_round_trips() -> None:
    [doc] = decode_text(SE).documents
    wire = doc.resource.to_wire()
    assert "status" not in wire and "exportTo" not in wire["spec"]
    again, found = decode_object(wire)
    assert not found and again is not None
    assert again.to_wire() == wire
    # The same spec under another kind is checked against that kind's schema.
    wrong = decode_text(SE.replace("ServiceEntry", "VirtualService"))
    assert {p.field for p in wrong.problems} >= {"spec.location", "spec.ports", "spec.resolution"}
    assert not any(isinstance(d.resource, VirtualService) for d in wrong.documents)


@pytest.mark.parametrize(
    ("text", "name", "expected"),
    [
        # A lone CR ends a line (YAML and editors agree); the end of a text is its last line.
        ("0:\r0", "x.yaml", [("MG0001", 2, None)]),
        ("0:\n0", "x.yaml", [("MG0001", 2, None)]),
        ("kind: [\n", "x.yaml", [("MG0001", 1, None)]),
        ("kind: X\r\n\r\napiVersion: [", "x.yaml", [("MG0001", 3, None)]),
        # NEL and LS end a line for libyaml (YAML 1.1), not for an editor.
        ('kind: "a\x85b\u2028c"\nx: [', "x.yaml", [("MG0001", 2, None)]),
        # NUL: libyaml's position counts bytes (of a BOM too), lines count characters.
        ("中文: 1\nx: \x00\n\n\n", "x.yaml", [("MG0001", 2, None)]),
        ("\ufeffkind: X\nx: \x00", "x.yaml", [("MG0001", 2, None)]),
        # A lone surrogate (a stdin decoded with surrogateescape) is no character.
        ("kind: X\nx: \udcff\n", "x.yaml", [("MG0001", 2, None)]),
        ('{"kind":\n"\ud800"}', "x.json", [("MG0001", 2, None)]),
        ("[\r1,\r2,]", "x.json", [("MG0001", 3, None)]),
    ],
)
def test_lines_are_lines_an_editor_shows(
    text: str, name: str, expected: list[tuple[str, int, str | None]]
) -> None:
    assert problems(decode_text(text, name)) == expected


def test_odd_characters_have_plain_messages() -> None:
    [nul] = decode_text("a: \x00\n").problems
    assert nul.message == (
        "invalid YAML: unacceptable character #x0000: control characters are not allowed"
    )
    [surrogate] = decode_text("a: \ud800\n").problems
    assert surrogate.message == (
        "invalid YAML: unacceptable character #xd800: surrogates are not allowed"
    )
    [comma] = decode_text("[\r1,\r2,]", "x.json").problems
    assert comma.message == "invalid JSON: trailing comma before ']' (column 3)"


def test_a_leading_bom_is_no_character() -> None:
    fields = SE.replace("  resolution: DNS\n", "  resolution: DNS\n  bogus: 1\n")
    for text, name in [
        ("\ufeff" + fields, "se.yaml"),
        ("\ufeff" + fields.replace("\n", "\r"), "se.yaml"),
        ("\ufeff--- " + json.dumps(yaml.safe_load(fields), indent=1), "se.yaml"),
        ("\ufeff" + json.dumps(yaml.safe_load(fields), indent=1), "se.json"),
    ]:
        [p] = decode_text(text, name).problems
        assert (p.code, p.field) == ("MG0005", "spec.bogus"), text
        line = next(i for i, row in enumerate(text.splitlines(), 1) if "bogus" in row)
        assert p.line == line, text
