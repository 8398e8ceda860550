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
    # Istio names the Gateway it generates for a Kubernetes Gateway's listener
    # NAME~istio-autogenerated-k8s-gateway~LISTENER.
    internal = "istio-ingress/web~istio-autogenerated-k8s-gateway~http"
    text = INGRESS + gateway_vs("generated", internal, "{host: reviews}")
    found = run(text, vsa.gateways)
    # Reported once as IST0165, not as a missing gateway or a host missing from it.
    assert [str(m).split(") ", 1)[1] for m in found] == [
        "Gateway reference in VirtualService default/generated is to an "
        f"implementation-generated internal Gateway: {internal}."
    ]
    assert codes(found) == [("IST0165", "VirtualService default/generated")]
    assert found[0].level.value == "Warning" and found[0].line == 20  # the gateways entry
    # Without a namespace too; a name that merely mentions the word is an ordinary gateway.
    short = gateway_vs("short", "web~istio-autogenerated-k8s-gateway~http", "{host: reviews}")
    assert codes(run(INGRESS + short, vsa.gateways)) == [
        ("IST0165", "VirtualService default/short")
    ]
    lookalike = gateway_vs("alike", "istio-system/web-istio-autogenerated-k8s-gateway", "{host: r}")
    found = run(INGRESS + lookalike, vsa.gateways)
    assert [m.type.code for m in found] == ["IST0101", "IST0132"]
    assert found[0].text == (
        'Referenced gateway not found: "istio-system/web-istio-autogenerated-k8s-gateway"'
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


def request_authn(name: str, namespace: str, selector: str | None) -> str:
    chosen = f"  selector: {{matchLabels: {selector}}}\n" if selector else ""
    return f"""
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: {name}, namespace: {namespace}}}
spec:
{chosen}  jwtRules: [{{issuer: testing@secure.istio.io}}]
"""


CLAIM = '{headers: {"@request.auth.claims.group": {exact: admin}}}'
JWT_TEXT = (
    "The virtual service uses the JWT claim based routing (key: @request.auth.claims.group) "
    "but found no request authentication for the gateway (istio-system/web) pod (ingress-1). "
    "The request authentication must first be applied for the gateway pods to validate the "
    "JWT token and make the claims available for routing."
)


def test_jwt_claim_routing_needs_request_authentication(run: Run) -> None:
    text = INGRESS + gateway_vs("claims", "istio-system/web", "{host: reviews}", CLAIM)
    found = run(text, vsa.jwt_claim_routes)
    assert codes(found) == [("IST0149", "VirtualService default/claims")]
    assert found[0].text == JWT_TEXT and found[0].level.value == "Error"
    assert found[0].line == 15  # Istio names no field: the VirtualService's first line
    # Without claim matches there is nothing to check.
    plain = INGRESS + gateway_vs("plain", "istio-system/web", "{host: reviews}")
    assert run(plain, vsa.jwt_claim_routes) == []


def test_jwt_claim_routing_is_covered_by_a_request_authentication_of_the_pod(run: Run) -> None:
    text = INGRESS + gateway_vs("claims", "istio-system/web", "{host: reviews}", CLAIM)
    covered = [
        request_authn("jwt", "istio-system", "{istio: ingressgateway}"),
        request_authn("everyone", "istio-system", None),  # no selector: every pod there
    ]
    for ra in covered:
        assert run(text + ra, vsa.jwt_claim_routes) == []
    not_covered = [
        request_authn("other", "istio-system", "{istio: egressgateway}"),
        request_authn("elsewhere", "default", None),  # neither root nor the pod's namespace
    ]
    for ra in not_covered:
        found = run(text + ra, vsa.jwt_claim_routes)
        assert [m.text for m in found] == [JWT_TEXT]


def test_jwt_claim_routing_forms_and_one_message_per_gateway_pod(run: Run) -> None:
    second_pod = """
---
apiVersion: v1
kind: Pod
metadata: {name: ingress-2, namespace: istio-system, labels: {istio: ingressgateway}}
spec: {containers: [{name: istio-proxy, image: proxyv2}]}
"""
    brackets = '{withoutHeaders: {"@Request.Auth.Claims[nested][key]": {exact: x}}}'
    text = INGRESS + second_pod + gateway_vs("square", "istio-system/web", "{host: r}", brackets)
    found = run(text, vsa.jwt_claim_routes)
    assert [m.text.split(" but ")[1].split(". ")[0] for m in found] == [
        "found no request authentication for the gateway (istio-system/web) pod (ingress-1)",
        "found no request authentication for the gateway (istio-system/web) pod (ingress-2)",
    ]
    assert "(key: @Request.Auth.Claims[nested][key])" in found[0].text
    # Not claim keys: an empty claim name, brackets left open; the mesh gateway; no gateway.
    for key in ("@request.auth.claims.", "@request.auth.claims[", "@request.auth.claimsx"):
        match = f'{{headers: {{"{key}": {{exact: x}}}}}}'
        assert (
            run(
                INGRESS + gateway_vs("k", "istio-system/web", "{host: r}", match),
                vsa.jwt_claim_routes,
            )
            == []
        )
    mesh = INGRESS + gateway_vs("mesh", "mesh", "{host: r}", CLAIM)
    missing = INGRESS + gateway_vs("gone", "istio-system/nothere", "{host: r}", CLAIM)
    assert run(mesh + missing, vsa.jwt_claim_routes) == []


def test_one_missing_subset_is_one_message(run: Run) -> None:
    """Every analyzer together: one IST0101 for one destination naming a missing subset."""
    rule = """
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets: [{name: v1, labels: {app: reviews}}]
"""
    pod = """
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-1, labels: {app: reviews}}
spec: {containers: [{name: app, image: reviews}]}
"""
    text = SERVICES + pod + rule + vs("bogus", "{host: reviews, subset: v9}")
    found = [m for m in run(text) if m.type.code == "IST0101"]
    assert [str(m).split(") ", 1)[1] for m in found] == [
        'Referenced host+subset in destinationrule not found: "reviews+v9"'
    ]
