"""Reading messy inputs: Lists item by item, unmodelled kinds skipped, bad documents noted."""

from __future__ import annotations

from pathlib import Path

from meshgate.analysis.inputs import read_files, with_defaults
from meshgate.analysis.runner import analyze
from meshgate.api.kinds.kubernetes import Namespace

LIST = """apiVersion: v1
kind: List
items:
- apiVersion: networking.istio.io/v1alpha3
  kind: EnvoyFilter
  metadata: {name: ef, namespace: istio-system}
  spec: {}
- apiVersion: v1
  kind: Node
  metadata:
    name: node-1
    labels: {topology.kubernetes.io/zone: z1}
- apiVersion: networking.istio.io/v1
  kind: ServiceEntry
  metadata: {name: db}
  spec:
    hosts: [db.example.com]
    ports: [{number: 5432, name: tcp, protocol: TCP}]
    resolution: DNS
- apiVersion: networking.istio.io/v1
  kind: Gateway
  metadata: {name: broken}
  spec: {servers: [{port: {number: "eighty"}}]}
"""


def test_list_items_are_read_one_by_one(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text(LIST)
    inputs = read_files([str(path)])
    assert [str(e.resource.key) for e in inputs.resources] == ["ServiceEntry default/db"]
    assert inputs.nodes["node-1"].labels == {"topology.kubernetes.io/zone": "z1"}
    skipped = [m for m in inputs.notes if m.type.code == "MG2001"]
    assert [str(m) for m in skipped] == [
        f"Info [MG2001] (EnvoyFilter istio-system/ef {path}:4) Skipped: EnvoyFilter "
        "(networking.istio.io/v1alpha3) is not a kind meshgate models; it was not analyzed."
    ]
    broken = [m for m in inputs.notes if m.type.code == "IST0106"]
    assert broken and all(m.origin == "Gateway broken" for m in broken)
    result = analyze(inputs)
    # The run went on past the skipped and broken documents: the ServiceEntry is analyzed.
    se = [m for m in result.messages if m.type.code == "IST0134"]
    assert [(m.origin, m.line) for m in se] == [("ServiceEntry default/db", 18)]


def test_defaults_fill_in_what_a_fresh_mesh_holds(tmp_path: Path) -> None:
    path = tmp_path / "ns.yaml"
    path.write_text(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: istio-system, labels: {a: b}}\n"
    )
    inputs = read_files([str(path)])
    with_defaults(inputs)
    namespaces = {e.name: e for e in inputs.resources if isinstance(e.resource, Namespace)}
    assert set(namespaces) == {"default", "istio-system"}
    assert namespaces["istio-system"].labels == {"a": "b"}  # the file's own wins
    assert any(e.resource.kind == "MeshConfig" for e in inputs.resources)


def test_syntax_errors_do_not_abort(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [\n")
    inputs = read_files([str(bad), str(tmp_path / "missing.yaml")])
    assert [m.type.code for m in inputs.notes] == ["IST0106", "IST0106"]
