"""What each proxy receives (issue 14 part 4), one Istio rule per test: Sidecar selection
and ``egress.hosts`` forms (``./*``, ``*/host``, ``ns/host``, ``~/*``, a bare host),
``outboundTrafficPolicy``; ``exportTo`` on ServiceEntry, VirtualService and
DestinationRule; MeshConfig's ``defaultServiceExportTo``, ``defaultVirtualServiceExportTo``
and ``defaultDestinationRuleExportTo``."""

from __future__ import annotations

from meshgate.api.decode import decode_text
from meshgate.model.proxy import Proxy
from meshgate.model.snapshot import Snapshot


def se(name: str, ns: str, host: str, export: str = "") -> str:
    export_line = f"\n  exportTo: {export}" if export else ""
    return f"""
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {name}, namespace: {ns}}}
spec:
  hosts: [{host}]
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  resolution: DNS{export_line}
"""


SERVICES = (
    se("a", "team-a", "a.example.com")
    + se("b", "team-b", "b.example.com")
    + se("c", "team-b", "c.example.com")
    + se("shared", "infra", "shared.example.com")
)


def sidecar(ns: str, hosts: str, extra: str = "", name: str = "default") -> str:
    return f"""
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: {name}, namespace: {ns}}}
spec:
  egress: [{{hosts: {hosts}}}]{extra}
"""


def mesh_config(spec: str) -> str:
    return f"""
---
apiVersion: meshgate.io/v1alpha1
kind: MeshConfig
metadata: {{name: default}}
spec: {spec}
"""


def build(text: str) -> Snapshot:
    result = decode_text(text.lstrip("-\n"), "test.yaml")
    assert result.ok, result.problems
    return Snapshot.build(result.resources)


def proxy(ns: str, labels: dict[str, str] | None = None) -> Proxy:
    return Proxy("sidecar", "10.34.0.50", "p", ns, labels or {})


def seen(snap: Snapshot, p: Proxy) -> set[str]:
    return {s.hostname for s in snap.visible_services(p)}


ALL = {"a.example.com", "b.example.com", "c.example.com", "shared.example.com"}


def test_no_sidecar_sees_every_exported_service() -> None:
    assert seen(build(SERVICES), proxy("team-a")) == ALL


def test_dot_star_imports_the_own_namespace_only() -> None:
    snap = build(SERVICES + sidecar("team-b", '["./*"]'))
    assert seen(snap, proxy("team-b")) == {"b.example.com", "c.example.com"}


def test_star_slash_host_imports_that_host_from_any_namespace() -> None:
    snap = build(SERVICES + sidecar("team-a", '["*/shared.example.com"]'))
    assert seen(snap, proxy("team-a")) == {"shared.example.com"}


def test_namespace_slash_host_imports_only_from_that_namespace() -> None:
    snap = build(SERVICES + sidecar("team-a", '["team-b/c.example.com", "infra/b.example.com"]'))
    # b.example.com is published by team-b, not infra: not imported.
    assert seen(snap, proxy("team-a")) == {"c.example.com"}


def test_namespace_slash_star_imports_a_whole_namespace() -> None:
    snap = build(SERVICES + sidecar("team-a", '["team-b/*", "./*"]'))
    assert seen(snap, proxy("team-a")) == {"a.example.com", "b.example.com", "c.example.com"}


def test_tilde_imports_nothing() -> None:
    snap = build(SERVICES + sidecar("team-a", '["~/*"]'))
    assert seen(snap, proxy("team-a")) == set()


def test_bare_host_means_any_namespace() -> None:
    snap = build(SERVICES + sidecar("team-a", '["b.example.com"]'))
    assert seen(snap, proxy("team-a")) == {"b.example.com"}


def test_workload_selector_wins_over_the_namespace_wide_sidecar() -> None:
    selected = sidecar(
        "team-a", '["*/shared.example.com"]', "\n  workloadSelector: {labels: {app: x}}", "x"
    )
    snap = build(SERVICES + sidecar("team-a", '["./*"]') + selected)
    assert seen(snap, proxy("team-a", {"app": "x"})) == {"shared.example.com"}
    assert seen(snap, proxy("team-a", {"app": "y"})) == {"a.example.com"}


def test_root_namespace_sidecar_is_the_mesh_default() -> None:
    snap = build(SERVICES + sidecar("istio-system", '["./*", "infra/*"]'))
    assert seen(snap, proxy("team-a")) == {"shared.example.com"}
    # A namespace's own Sidecar replaces the root one.
    snap = build(SERVICES + sidecar("istio-system", '["infra/*"]') + sidecar("team-a", '["./*"]'))
    assert seen(snap, proxy("team-a")) == {"a.example.com"}


def test_sidecar_outbound_traffic_policy_overrides_the_mesh() -> None:
    snap = build(
        SERVICES
        + mesh_config("{outboundTrafficPolicy: {mode: ALLOW_ANY}}")
        + sidecar("team-a", '["./*"]', "\n  outboundTrafficPolicy: {mode: REGISTRY_ONLY}")
    )
    assert snap.outbound_mode(proxy("team-a")) == "REGISTRY_ONLY"
    assert snap.outbound_mode(proxy("team-b")) == "ALLOW_ANY"


def test_service_entry_export_to() -> None:
    snap = build(
        se("own", "team-a", "own.example.com", '["."]')
        + se("none", "team-a", "none.example.com", '["~"]')
        + se("named", "team-a", "named.example.com", '["team-b"]')
    )
    assert seen(snap, proxy("team-a")) == {"own.example.com"}
    assert seen(snap, proxy("team-b")) == {"named.example.com"}
    assert seen(snap, proxy("team-c")) == set()


def test_default_service_export_to() -> None:
    text = SERVICES + se("pub", "team-b", "pub.example.com", '["*"]')
    snap = build(text + mesh_config('{defaultServiceExportTo: ["."]}'))
    # Services that set no exportTo stay in their namespace; one exported to "*" does not.
    assert seen(snap, proxy("team-a")) == {"a.example.com", "pub.example.com"}
    assert seen(snap, proxy("team-b")) == {"b.example.com", "c.example.com", "pub.example.com"}
    snap = build(text + mesh_config('{defaultServiceExportTo: ["infra"]}'))
    assert seen(snap, proxy("infra")) == ALL | {"pub.example.com"}
    assert seen(snap, proxy("team-a")) == {"pub.example.com"}


def test_default_service_export_to_covers_kubernetes_services() -> None:
    svc = """
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {ports: [{name: http, port: 80}]}
"""
    snap = build(svc + mesh_config('{defaultServiceExportTo: ["."]}'))
    assert seen(snap, proxy("shop")) == {"web.shop.svc.cluster.local"}
    assert seen(snap, proxy("other")) == set()


def vs(name: str, ns: str, host: str, export: str = "") -> str:
    export_line = f"\n  exportTo: {export}" if export else ""
    return f"""
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}, namespace: {ns}}}
spec:
  hosts: [{host}]{export_line}
  http: [{{route: [{{destination: {{host: {host}}}}}]}}]
"""


def test_virtual_service_export_to_and_its_mesh_default() -> None:
    text = (
        SERVICES
        + vs("private", "team-a", "a.example.com", '["."]')
        + vs("plain", "team-b", "b.example.com")
    )
    snap = build(text)
    assert snap.mesh_virtual_service("a.example.com", "team-a") is not None
    assert snap.mesh_virtual_service("a.example.com", "team-b") is None
    assert snap.mesh_virtual_service("b.example.com", "team-a") is not None
    snap = build(text + mesh_config('{defaultVirtualServiceExportTo: ["."]}'))
    assert snap.mesh_virtual_service("b.example.com", "team-a") is None
    assert snap.mesh_virtual_service("b.example.com", "team-b") is not None
    # exportTo as written wins over the default.
    snap = build(text + mesh_config('{defaultVirtualServiceExportTo: ["~"]}'))
    assert snap.mesh_virtual_service("a.example.com", "team-a") is not None
    assert snap.mesh_virtual_service("b.example.com", "team-b") is None


def dr(name: str, ns: str, host: str, export: str = "") -> str:
    export_line = f"\n  exportTo: {export}" if export else ""
    return f"""
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {name}, namespace: {ns}}}
spec:
  host: {host}{export_line}
  trafficPolicy: {{connectionPool: {{tcp: {{maxConnections: 7}}}}}}
"""


def test_destination_rule_export_to_and_its_mesh_default() -> None:
    text = (
        SERVICES
        + dr("b", "team-b", "b.example.com")
        + dr("c", "team-b", "c.example.com", '["team-a"]')
    )
    snap = build(text)
    assert snap.destination_rule("team-a", "b.example.com") is not None
    assert snap.destination_rule("team-c", "c.example.com") is None
    assert snap.destination_rule("team-a", "c.example.com") is not None
    snap = build(text + mesh_config('{defaultDestinationRuleExportTo: ["."]}'))
    assert snap.destination_rule("team-a", "b.example.com") is None
    assert snap.destination_rule("team-b", "b.example.com") is not None
    assert snap.destination_rule("team-a", "c.example.com") is not None  # as written
