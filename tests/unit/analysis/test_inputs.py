"""Reading messy inputs: Lists item by item, unmodelled kinds skipped, bad documents noted."""

from __future__ import annotations

from pathlib import Path

from meshgate.analysis.inputs import read_files, with_defaults
from meshgate.analysis.runner import ANALYZERS, analyze
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
    keys = [str(e.resource.key) for e in inputs.resources]
    assert keys == ["ServiceEntry default/db", "Gateway default/broken"]
    assert inputs.nodes["node-1"].labels == {"topology.kubernetes.io/zone": "z1"}
    skipped = [m for m in inputs.notes if m.type.code == "MG2001"]
    assert [str(m) for m in skipped] == [
        f"Info [MG2001] (EnvoyFilter istio-system/ef {path}:4) Skipped: EnvoyFilter "
        "(networking.istio.io/v1alpha3) is not a kind meshgate models; it was not analyzed."
    ]
    result = analyze(inputs)
    # The run went on past the skipped and broken documents: the ServiceEntry is analyzed.
    se = [m for m in result.messages if m.type.code == "IST0134"]
    assert [(m.origin, m.line) for m in se] == [("ServiceEntry default/db", 18)]
    # The broken Gateway was read leniently; its schema problem is still reported, on its line.
    broken = [m for m in result.messages if m.type.code == "IST0106"]
    assert {(m.origin, m.line) for m in broken} == {("Gateway default/broken", 23)}
    assert any("spec.servers[0].port.number" in m.text for m in broken)


PARTIAL = """apiVersion: v1
kind: Pod
metadata: {name: bare, namespace: shop, labels: {app: shop}}
---
apiVersion: v1
kind: Pod
metadata: {name: unnamed-container, namespace: shop, labels: {app: cart}}
spec:
  containers: [{image: cart}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: shop}
  ports: [{name: http, port: 80, protocol: HTTP}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: portless, namespace: shop}
spec:
  selector: {app: shop}
  servers: [{hosts: [a.example.com]}]
---
kind: Gateway
metadata: {name: no-api-version}
"""


def test_partial_documents_are_read_leniently(tmp_path: Path) -> None:
    # Istio's analyzers read partial inputs (a Pod with only labels, a Service port with
    # protocol HTTP, a server without a port); meshgate reads them too, and still says
    # what is wrong with them.
    path = tmp_path / "partial.yaml"
    path.write_text(PARTIAL)
    inputs = read_files([str(path)])
    by_key = {str(e.resource.key): e for e in inputs.resources}
    assert set(by_key) == {
        "Pod shop/bare",
        "Pod shop/unnamed-container",
        "Service shop/web",
        "Gateway shop/portless",
    }
    assert by_key["Pod shop/bare"].labels == {"app": "shop"}
    assert by_key["Pod shop/bare"].resource.spec.containers == []
    web = by_key["Service shop/web"].resource
    assert [p.port for p in web.spec.ports or []] == [80]
    assert all(e.problems for e in by_key.values())
    # A document that cannot be made to decode is still a note, and nothing aborts.
    notes = [m for m in inputs.notes if m.type.code == "IST0106"]
    assert [m.origin for m in notes] == ["Gateway no-api-version"]


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


def test_schema_problems_belong_to_the_schema_analyzer_of_their_kind(tmp_path: Path) -> None:
    # Istio reports schema findings from schema.ValidationAnalyzer.<Kind>; running another
    # analyzer alone (as Istio's analyzer tests do) leaves them out.
    path = tmp_path / "vs.yaml"
    path.write_text(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: v}\n"
        "spec:\n  http:\n  - route:\n    - destination: {host: a.example.com}\n"
    )
    inputs = read_files([str(path)])
    by_name = {a.name: a for a in ANALYZERS}
    schema_only = analyze(inputs, (by_name["schema.ValidationAnalyzer.VirtualService"],))
    assert [(m.type.code, m.origin) for m in schema_only.messages] == [
        ("IST0133", "VirtualService default/v")
    ]
    other = analyze(inputs, (by_name["schema.ValidationAnalyzer.Gateway"],))
    assert other.messages == ()
    everything = analyze(inputs)
    assert "IST0133" in [m.type.code for m in everything.messages]
