"""Several ServiceEntries or DestinationRules for one host: Istio's pick-and-merge rules."""

from __future__ import annotations

from typing import Any

from meshgate.api.decode import decode_text
from meshgate.model.fields import get, get_list, get_str
from meshgate.model.proxy import Proxy
from meshgate.model.snapshot import Snapshot


def build(text: str) -> Snapshot:
    result = decode_text(text, "test.yaml")
    assert result.ok, result.problems
    return Snapshot.build(result.resources)


def se(
    name: str,
    host: str,
    ports: str,
    *,
    ns: str = "default",
    created: str = "",
    extra: str = "",
    resolution: str = "DNS",
) -> str:
    stamp = f", creationTimestamp: '{created}'" if created else ""
    return f"""---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {name}, namespace: {ns}{stamp}}}
spec:
  hosts: [{host}]
  ports: {ports}
  resolution: {resolution}
  location: MESH_EXTERNAL
{extra}"""


HTTP80 = "[{number: 80, name: http, protocol: HTTP}]"
HTTPS443 = "[{number: 443, name: https, protocol: HTTPS}]"


def sidecar(ns: str = "default", labels: dict[str, str] | None = None) -> Proxy:
    return Proxy("sidecar", "10.34.0.9", "client", ns, labels or {})


def router(ns: str) -> Proxy:
    return Proxy("router", "10.34.0.8", "gw", ns)


def port_map(snap: Snapshot, proxy: Proxy, host: str) -> dict[int, str]:
    svc = snap.service_for(proxy, host)
    assert svc is not None, host
    return {p.number: p.protocol for p in svc.ports}


# ---- services ------------------------------------------------------------------------------


def test_same_host_same_namespace_merges_ports_whatever_the_names() -> None:
    # The reviewer's case: the seed's aliyun.com:80 plus a second entry for 443. Neither name
    # order nor apply order may drop a port.
    for second in ("aliyun-https", "zz-https", "a-https"):
        snap = build(
            se("external-svc-http", "aliyun.com", HTTP80) + se(second, "aliyun.com", HTTPS443)
        )
        proxy = sidecar()
        assert port_map(snap, proxy, "aliyun.com") == {80: "HTTP", 443: "HTTPS"}, second
        seen = [s for s in snap.visible_services(proxy) if s.hostname == "aliyun.com"]
        assert len(seen) == 1
        assert set(seen[0].endpoints) == {80, 443}
        assert [(e.address, e.port) for e in seen[0].endpoints[443]] == [("aliyun.com", 443)]
        # The namespace view (no proxy) agrees, and so does a gateway's.
        view = snap.service("aliyun.com", "default")
        assert view is not None and {p.number for p in view.ports} == {80, 443}
        assert port_map(snap, router("istio-system"), "aliyun.com") == {
            80: "HTTP",
            443: "HTTPS",
        }


def test_oldest_keeps_a_contested_port_and_its_fields() -> None:
    snap = build(
        se(
            "a-new",
            "api.example.com",
            "[{number: 80, name: tcp, protocol: TCP}, {number: 8080, name: http-alt}]",
            created="2024-06-01T00:00:00Z",
        )
        + se(
            "b-old",
            "api.example.com",
            HTTP80,
            created="2024-01-01T00:00:00Z",
            extra="  addresses: [192.0.2.80]\n",
        )
    )
    svc = snap.service_for(sidecar(), "api.example.com")
    assert svc is not None
    assert [(p.number, p.name, p.protocol) for p in svc.ports] == [
        (80, "http", "HTTP"),
        (8080, "http-alt", "HTTP"),
    ]
    # The older entry owns the service; its fields stand (canMergeServices only adds ports).
    assert svc.name == "b-old" and svc.addresses == ("192.0.2.80",)


def test_entries_that_cannot_merge_leave_the_oldest_alone() -> None:
    # Different resolution, different labels or different exportTo: Istio ignores the newer.
    variants = [
        se("zz", "h.example", HTTPS443, resolution="NONE"),
        se("zz", "h.example", HTTPS443, extra="  exportTo: ['*', other]\n"),
        se("zz", "h.example", HTTPS443).replace(
            "namespace: default", "namespace: default, labels: {team: x}"
        ),
    ]
    for newer in variants:
        snap = build(se("aa", "h.example", HTTP80) + newer)
        assert port_map(snap, sidecar(), "h.example") == {80: "HTTP"}, newer
    # A private entry comes before public ones in its own namespace, so there it is the
    # "first" and the public one is the one ignored; elsewhere only the public one is seen.
    snap = build(
        se("aa", "h.example", HTTP80) + se("zz", "h.example", HTTPS443, extra="  exportTo: ['.']\n")
    )
    assert port_map(snap, sidecar(), "h.example") == {443: "HTTPS"}
    assert port_map(snap, sidecar("other"), "h.example") == {80: "HTTP"}


def test_static_endpoints_union_by_port_name() -> None:
    ep = "  endpoints: [{{address: {}}}]\n"
    snap = build(
        se("one", "db.example", HTTP80, resolution="STATIC", extra=ep.format("192.0.2.1"))
        + se("two", "db.example", HTTP80, resolution="STATIC", extra=ep.format("192.0.2.2"))
        + se(
            "three",
            "db.example",
            "[{number: 80, name: http, protocol: HTTP}, {number: 9000, name: admin}]",
            resolution="STATIC",
            extra=ep.format("192.0.2.1"),
        )
    )
    svc = snap.service_for(sidecar(), "db.example")
    assert svc is not None
    assert [(e.address, e.port) for e in svc.endpoints[80]] == [
        ("192.0.2.1", 80),
        ("192.0.2.2", 80),
    ]
    assert [(e.address, e.port) for e in svc.endpoints[9000]] == [("192.0.2.1", 9000)]


def test_namespace_precedence_for_sidecars() -> None:
    old, new = "2024-01-01T00:00:00Z", "2024-06-01T00:00:00Z"
    snap = build(
        se("ext", "x.example", HTTP80, ns="alpha", created=old)
        + se("ext", "x.example", HTTPS443, ns="beta", created=new)
    )
    # Own namespace first, even when younger; no merging across namespaces.
    assert port_map(snap, sidecar("beta"), "x.example") == {443: "HTTPS"}
    assert port_map(snap, sidecar("alpha"), "x.example") == {80: "HTTP"}
    # Elsewhere: the oldest public one.
    assert port_map(snap, sidecar("gamma"), "x.example") == {80: "HTTP"}
    # A newer entry exported to gamma by name comes before public ones.
    snap = build(
        se("ext", "x.example", HTTP80, ns="alpha", created=old)
        + se("ext", "x.example", HTTPS443, ns="beta", created=new, extra="  exportTo: [gamma]\n")
    )
    assert port_map(snap, sidecar("gamma"), "x.example") == {443: "HTTPS"}
    assert port_map(snap, sidecar("delta"), "x.example") == {80: "HTTP"}


def test_kubernetes_service_beats_service_entries() -> None:
    k8s = """---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop, creationTimestamp: '2024-06-01T00:00:00Z'}
spec: {ports: [{name: http, port: 8000}]}
"""
    squat = se(
        "squat",
        "web.shop.svc.cluster.local",
        HTTPS443,
        ns="squat",
        created="2024-01-01T00:00:00Z",
    )
    snap = build(k8s + squat)
    for proxy in (sidecar("other"), router("other")):
        svc = snap.service_for(proxy, "web.shop.svc.cluster.local")
        assert svc is not None and svc.is_kubernetes, proxy.kind
    # ... but not over the sidecar's own namespace.
    assert port_map(snap, sidecar("squat"), "web.shop.svc.cluster.local") == {443: "HTTPS"}
    # In one namespace a ServiceEntry never adds ports to a Kubernetes Service.
    snap = build(k8s + se("extra", "web.shop.svc.cluster.local", HTTPS443, ns="shop"))
    assert port_map(snap, sidecar("shop"), "web.shop.svc.cluster.local") == {8000: "HTTP"}


def test_routers_take_the_first_in_order_without_namespace_preference() -> None:
    snap = build(
        se("ext", "x.example", HTTP80, ns="alpha", created="2024-01-01T00:00:00Z")
        + se("ext", "x.example", HTTPS443, ns="istio-system", created="2024-06-01T00:00:00Z")
    )
    # Both public: the older wins, even for a gateway in the younger one's namespace.
    assert port_map(snap, router("istio-system"), "x.example") == {80: "HTTP"}
    assert port_map(snap, sidecar("istio-system"), "x.example") == {443: "HTTPS"}


def test_sidecar_imports_pick_among_namespaces() -> None:
    snap = build(
        se("ext", "x.example", HTTP80, ns="alpha")
        + se("ext", "x.example", HTTPS443, ns="beta")
        + """---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: alpha}
spec: {egress: [{hosts: [beta/*]}]}
"""
    )
    assert port_map(snap, sidecar("alpha"), "x.example") == {443: "HTTPS"}


# ---- destination rules --------------------------------------------------------------------


def dr(name: str, body: str, *, ns: str = "default", created: str = "") -> str:
    stamp = f", creationTimestamp: '{created}'" if created else ""
    return f"""---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {name}, namespace: {ns}{stamp}}}
spec:
{body}"""


GW = "istio-egressgateway.istio-system.svc.cluster.local"
FOR_CNN = dr("egressgateway-for-cnn", f"  host: {GW}\n  subsets: [{{name: cnn}}]\n")
TO_GATEWAY = dr(
    "to-gateway",
    f"  host: {GW}\n  trafficPolicy: {{tls: {{mode: SIMPLE, insecureSkipVerify: true}}}}\n",
)


def tls_mode(rule: Any) -> str:
    return get_str(get(get(get(rule, "spec"), "traffic_policy"), "tls"), "mode")


def subsets(rule: Any) -> list[tuple[str, dict[str, str]]]:
    return [
        (get_str(s, "name"), dict(get(s, "labels") or {}))
        for s in get_list(get(rule, "spec"), "subsets")
    ]


def test_rules_for_one_host_add_up() -> None:
    # The reviewer's case: the egress doc's subset-only rule, then a rule with a policy.
    for text in (FOR_CNN + TO_GATEWAY, TO_GATEWAY + FOR_CNN):
        snap = build(text)
        rule = snap.destination_rule("default", GW)
        assert rule is not None
        assert tls_mode(rule) == "SIMPLE"
        assert [name for name, _ in subsets(rule)] == ["cnn"]
        # The first rule (here by name, both undated) owns the result; inputs are untouched.
        assert get_str(get(rule, "metadata"), "name") == "egressgateway-for-cnn"
    original = next(r for r in snap.destination_rules if r.name == "egressgateway-for-cnn")
    assert original.spec.traffic_policy is None


def test_oldest_top_level_policy_and_first_subset_win() -> None:
    old = dr(
        "zz-old",
        "  host: api.example.com\n  trafficPolicy: {tls: {mode: SIMPLE}}\n"
        "  subsets: [{name: v1, labels: {version: old}}]\n",
        created="2024-01-01T00:00:00Z",
    )
    new = dr(
        "aa-new",
        "  host: api.example.com\n  trafficPolicy: {tls: {mode: DISABLE}}\n"
        "  subsets: [{name: v1, labels: {version: new}}, {name: v2, labels: {version: v2}}]\n",
        created="2024-06-01T00:00:00Z",
    )
    snap = build(se("api", "api.example.com", HTTP80) + new + old)
    rule = snap.destination_rule("default", "api.example.com")
    assert tls_mode(rule) == "SIMPLE"
    assert subsets(rule) == [("v1", {"version": "old"}), ("v2", {"version": "v2"})]


def test_merged_rules_keep_export_and_lookup_order() -> None:
    # Two private rules in the service's namespace merge; other namespaces see neither and
    # fall through to the root namespace's rule.
    text = (
        se("api", "api.example.com", HTTP80, ns="svc")
        + dr("a", "  host: api.example.com\n  exportTo: ['.']\n  subsets: [{name: a}]\n", ns="svc")
        + dr("b", "  host: api.example.com\n  exportTo: ['.']\n  subsets: [{name: b}]\n", ns="svc")
        + dr("root", "  host: '*.example.com'\n  subsets: [{name: r}]\n", ns="istio-system")
    )
    snap = build(text)
    assert [n for n, _ in subsets(snap.destination_rule("svc", "api.example.com"))] == ["a", "b"]
    assert [n for n, _ in subsets(snap.destination_rule("else", "api.example.com"))] == ["r"]
    # Public rules in the service's namespace merge too and reach other clients.
    public = text.replace("exportTo: ['.']", "exportTo: ['*']")
    snap = build(public)
    assert [n for n, _ in subsets(snap.destination_rule("else", "api.example.com"))] == ["a", "b"]


def test_workload_selector_rule_wins_for_matching_proxies_only() -> None:
    text = (
        se("api", "api.example.com", HTTP80)
        + dr("all", "  host: api.example.com\n  trafficPolicy: {tls: {mode: SIMPLE}}\n")
        + dr(
            "picky",
            "  host: api.example.com\n  workloadSelector: {matchLabels: {app: sleep}}\n"
            "  trafficPolicy: {tls: {mode: MUTUAL}}\n",
        )
    )
    snap = build(text)
    api = snap.service("api.example.com", "default")
    assert api is not None
    chosen = snap.destination_rule_for(sidecar("default", {"app": "sleep"}), api)
    assert tls_mode(chosen) == "MUTUAL"
    assert tls_mode(snap.destination_rule_for(sidecar("default", {"app": "web"}), api)) == (
        "SIMPLE"
    )
    # Selector rules are private to their namespace.
    other = snap.destination_rule_for(sidecar("other", {"app": "sleep"}), api)
    assert tls_mode(other) == "SIMPLE"
