"""VirtualService analyzers: destinations, subsets, gateways, mesh host conflicts."""

from __future__ import annotations

from tests.unit.analysis.conftest import Run, codes

from meshgate.analysis import virtualservices as vsa

SERVICES = """
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
---
apiVersion: v1
kind: Service
metadata: {name: reviews-2port, namespace: default}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}, {name: http2, port: 9090}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: wild, namespace: default}
spec:
  hosts: ["*.wikipedia.org"]
  ports: [{number: 443, name: tls, protocol: TLS}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: private, namespace: other}
spec:
  hosts: [private.example.com]
  exportTo: ["."]
  ports: [{number: 80, name: http, protocol: HTTP}]
"""


def vs(name: str, route: str, namespace: str = "default", extra: str = "") -> str:
    return f"""
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  hosts: [{name}.example.com]
{extra}  http:
  - route:
    - destination: {route}
"""


def test_destination_hosts_resolve_to_services(run: Run) -> None:
    clean = (
        SERVICES
        + vs("short", "{host: reviews}")
        + vs("fqdn", "{host: reviews.default.svc.cluster.local, port: {number: 9080}}")
        + vs("wildcard", "{host: en.wikipedia.org}")
        + vs("twoport", "{host: reviews-2port, port: {number: 9090}}")
    )
    assert run(clean, vsa.destination_hosts) == []


def test_unknown_host_bad_port_and_missing_port_selector(run: Run) -> None:
    text = (
        SERVICES
        + vs("bogus", "{host: reviews-bogus}")
        + vs("badport", "{host: reviews, port: {number: 1}}")
        + vs("missing", "{host: reviews-2port}")
        + vs("hidden", "{host: private.example.com}")
        + vs("wildroot", "{host: wikipedia.org}")
    )
    found = run(text, vsa.destination_hosts)
    assert codes(found) == [
        ("IST0101", "VirtualService default/badport"),
        ("IST0101", "VirtualService default/bogus"),
        ("IST0101", "VirtualService default/hidden"),  # exportTo "." of another namespace
        ("IST0101", "VirtualService default/wildroot"),  # *.wikipedia.org never covers the apex
        ("IST0112", "VirtualService default/missing"),
    ]
    texts = {m.origin: m.text for m in found}
    assert texts["VirtualService default/bogus"] == 'Referenced host not found: "reviews-bogus"'
    assert texts["VirtualService default/badport"] == 'Referenced host:port not found: "reviews:1"'
    assert (
        '"reviews-2port" that exposes multiple ports [9080 9090]'
        in texts["VirtualService default/missing"]
    )


def test_mirror_hosts_are_checked_too(run: Run) -> None:
    text = SERVICES + vs("m", "{host: reviews}") + "    mirror: {host: nowhere}\n"
    found = run(text, vsa.destination_hosts)
    assert [m.text for m in found] == ['Referenced mirror host not found: "nowhere"']


def test_subsets_need_a_destination_rule_defining_them(run: Run) -> None:
    rule = """
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}]
"""
    good = SERVICES + rule + vs("ok", "{host: reviews.default.svc.cluster.local, subset: v1}")
    assert run(good, vsa.destination_subsets) == []
    bad = SERVICES + rule + vs("bogus", "{host: reviews, subset: v9}")
    found = run(bad, vsa.destination_subsets)
    assert [m.text for m in found] == [
        'Referenced host+subset in destinationrule not found: "reviews+v9"'
    ]


GATEWAY = """
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["default/*.example.com", "./local.example.com"]
"""


def test_gateways_must_exist_and_publish_the_hosts(run: Run) -> None:
    ok = vs("app", "{host: reviews}", extra="  gateways: [istio-system/gw, mesh]\n")
    assert run(SERVICES + GATEWAY + ok, vsa.gateways) == []
    missing = vs("app", "{host: reviews}", extra="  gateways: [nope]\n")
    found = run(SERVICES + GATEWAY + missing, vsa.gateways)
    assert codes(found) == [
        ("IST0101", "VirtualService default/app"),
        ("IST0132", "VirtualService default/app"),
    ]
    # The gateway publishes *.example.com only to namespace default.
    elsewhere = vs("app", "{host: reviews}", "team", extra="  gateways: [istio-system/gw]\n")
    found = run(SERVICES + GATEWAY + elsewhere, vsa.gateways)
    assert codes(found) == [("IST0132", "VirtualService team/app")]
    assert "not found in Gateway istio-system/gw" in found[0].text


def test_mesh_bound_virtual_services_sharing_a_host_conflict(run: Run) -> None:
    def bound(name: str, namespace: str, export: str = "") -> str:
        extra = f"  exportTo: [{export}]\n" if export else ""
        return f"""
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  hosts: [ratings.shared.svc.cluster.local]
{extra}  http:
  - route:
    - destination: {{host: ratings.shared.svc.cluster.local}}
"""

    found = run(bound("a", "team1") + bound("b", "team2"), vsa.conflicting_mesh_hosts)
    assert codes(found) == [
        ("IST0109", "VirtualService team1/a"),
        ("IST0109", "VirtualService team2/b"),
    ]
    assert "team1/a,team2/b" in found[0].text
    private = bound("a", "team1", '"."') + bound("b", "team2", '"."')
    assert run(private, vsa.conflicting_mesh_hosts) == []
    gateway_only = bound("a", "team1") + bound("b", "team2").replace(
        "  http:", "  gateways: [gw]\n  http:"
    )
    assert run(gateway_only, vsa.conflicting_mesh_hosts) == []


INGRESS = """
apiVersion: v1
kind: Pod
metadata: {name: ingress-1, namespace: istio-system, labels: {istio: ingressgateway}}
spec: {containers: [{name: istio-proxy, image: proxyv2}]}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: web, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["shop.example.com"]}]
"""


def gateway_vs(name: str, gateway: str, route: str, match: str = "") -> str:
    m = f"    match: [{match}]\n" if match else ""
    return f"""
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}}}
spec:
  hosts: [shop.example.com]
  gateways: [{gateway}]
  http:
  - route: [{{destination: {route}}}]
{m}"""


def test_internal_gateways_must_not_be_referenced(run: Run) -> None:
    internal = "istio-ingress/web-istio-autogenerated-k8s-gateway-web"
    text = INGRESS + gateway_vs("generated", internal, "{host: reviews}")
    found = run(text, vsa.gateways)
    # Reported once as IST0165, not as a missing gateway or a host missing from it.
    assert codes(found) == [("IST0165", "VirtualService default/generated")]
    assert found[0].text == (
        "Gateway reference in VirtualService default/generated is to an "
        f"implementation-generated internal Gateway: {internal}."
    )


def test_gateway_routes_without_subset_skip_mesh_subset_routing(run: Run) -> None:
    split = """
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-split}
spec:
  hosts: [reviews]
  http:
  - route: [{destination: {host: reviews, subset: v1}}]
"""
    text = (
        SERVICES
        + INGRESS
        + split
        + gateway_vs("direct", "istio-system/web", "{host: reviews}")
        + gateway_vs("by-subset", "istio-system/web", "{host: reviews, subset: v1}")
    )
    found = [m for m in run(text, vsa.destination_hosts) if m.type.code == "IST0140"]
    assert codes(found) == [("IST0140", "VirtualService default/direct")]
    assert found[0].text == (
        "Subset in virtual service default/reviews-split has no effect on ingress gateway "
        "default/direct requests"
    )


def test_jwt_claim_routing_needs_request_authentication(run: Run) -> None:
    claim = '{headers: {"@request.auth.claims.group": {exact: admin}}}'
    text = INGRESS + gateway_vs("claims", "istio-system/web", "{host: reviews}", claim)
    found = run(text, vsa.jwt_claim_routes)
    assert codes(found) == [("IST0149", "VirtualService default/claims")]
    assert "(key: @request.auth.claims.group)" in found[0].text
    assert "gateway (istio-system/web) pod (istio-system/ingress-1)" in found[0].text
    # Without claim matches there is nothing to check.
    plain = INGRESS + gateway_vs("plain", "istio-system/web", "{host: reviews}")
    assert run(plain, vsa.jwt_claim_routes) == []
    # A RequestAuthentication meshgate cannot read may cover the gateway: no guess.
    request_authn = """
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
"""
    assert run(text + request_authn, vsa.jwt_claim_routes) == []
