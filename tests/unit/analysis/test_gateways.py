"""Gateway analyzers, on inputs modelled on Istio's analyzer testdata."""

from __future__ import annotations

from tests.unit.analysis.conftest import Run, codes

from meshgate.analysis import gateways

INGRESS_POD = """
apiVersion: v1
kind: Pod
metadata:
  name: ingress-1
  namespace: istio-system
  labels: {istio: ingressgateway}
spec:
  containers: [{name: istio-proxy, image: proxyv2}]
---
apiVersion: v1
kind: Service
metadata:
  name: istio-ingressgateway
  namespace: istio-system
spec:
  selector: {istio: ingressgateway}
  ports:
  - {name: http2, port: 80, targetPort: 8080}
  - {name: https, port: 443}
"""


def gateway(name: str, port: int, hosts: str = '["*"]', selector: str = "ingressgateway") -> str:
    return f"""
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: {name}
spec:
  selector: {{istio: {selector}}}
  servers:
  - port: {{number: {port}, name: p{port}, protocol: HTTP}}
    hosts: {hosts}
"""


def test_selector_matching_no_pod_is_referenced_resource_not_found(run: Run) -> None:
    found = run(gateway("httpbin-gateway", 80, selector="ingresstypo"), gateways.gateway_ports)
    assert codes(found) == [("IST0101", "Gateway default/httpbin-gateway")]
    assert found[0].text == 'Referenced selector not found: "istio=ingresstypo"'
    assert found[0].line == 8  # the selector's line


def test_port_must_be_a_port_or_target_port_of_the_gateway_service(run: Run) -> None:
    # 8080 is the Service's targetPort for 80, 80 its port, and 443 has no targetPort.
    clean = INGRESS_POD + gateway("ok", 8080) + gateway("svc-port", 80) + gateway("tls", 443)
    assert run(clean, gateways.gateway_ports) == []
    found = run(INGRESS_POD + gateway("bad", 8888), gateways.gateway_ports)
    assert codes(found) == [("IST0162", "Gateway default/bad")]
    assert "(port 8888)" in found[0].text and "istio=ingressgateway" in found[0].text


def test_credential_name_needs_a_secret_beside_the_workload(run: Run) -> None:
    tls_gateway = """
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: tls
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: SIMPLE, credentialName: my-cert}
"""
    found = run(INGRESS_POD + tls_gateway, gateways.gateway_secrets)
    assert codes(found) == [("IST0101", "Gateway default/tls")]
    assert found[0].text == 'Referenced credentialName not found: "my-cert"'
    # A Secret in the Gateway's own namespace does not count: the workload's does.
    wrong_ns = "\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: my-cert}\n"
    assert codes(run(INGRESS_POD + tls_gateway + wrong_ns, gateways.gateway_secrets))
    secret = wrong_ns.replace("{name: my-cert}", "{name: my-cert, namespace: istio-system}")
    assert run(INGRESS_POD + tls_gateway + secret, gateways.gateway_secrets) == []


def test_conflicting_gateways_are_reported_on_each(run: Run) -> None:
    text = INGRESS_POD + gateway("alpha", 80, '["foo.bar"]') + gateway("beta", 80, '["foo.bar"]')
    found = run(text, gateways.conflicting_gateways)
    assert codes(found) == [
        ("IST0145", "Gateway default/alpha"),
        ("IST0145", "Gateway default/beta"),
    ]
    assert found[0].text.startswith("Conflict with gateways default/beta (workload selector")


def test_gateways_on_other_ports_or_hosts_do_not_conflict(run: Run) -> None:
    ports = INGRESS_POD + gateway("alpha", 80, '["foo.bar"]') + gateway("beta", 81, '["foo.bar"]')
    hosts = INGRESS_POD + gateway("alpha", 80, '["foo.bar"]') + gateway("beta", 80, '["x.bar"]')
    assert run(ports, gateways.conflicting_gateways) == []
    assert run(hosts, gateways.conflicting_gateways) == []


def test_sub_selector_conflicts_when_a_pod_matches_both(run: Run) -> None:
    pod = INGRESS_POD.replace(
        "{istio: ingressgateway}\nspec:\n  containers",
        "{istio: ingressgateway, app: gw}\nspec:\n  containers",
    )
    text = (
        pod
        + gateway("alpha", 80, '["foo.bar"]')
        + gateway("beta", 80, '["foo.bar"]').replace(
            "{istio: ingressgateway}", "{istio: ingressgateway, app: gw}"
        )
    )
    assert len(run(text, gateways.conflicting_gateways)) == 2


def tls_gateway(name: str, credential: str, selector: str, namespace: str = "istio-system") -> str:
    return f"""
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  selector: {selector}
  servers:
  - port: {{number: 443, name: https, protocol: HTTPS}}
    hosts: ["{name}.example.com"]
    tls: {{mode: SIMPLE, credentialName: {credential}}}
"""


def test_a_certificate_shared_on_one_workload_is_a_duplicate(run: Run) -> None:
    wide, internal = "{istio: ingressgateway}", "{istio: ingressgateway, type: internal}"
    text = (
        INGRESS_POD
        + tls_gateway("a", "shared", wide)
        + tls_gateway("b", "shared", wide)
        # c's selector is within d's: c is reported, d (narrower) is not
        + tls_gateway("c", "other", wide, namespace="default")
        + tls_gateway("d", "other", internal)
        + tls_gateway("e", "own", wide)
    )
    found = run(text, gateways.duplicate_certificates)
    assert codes(found) == [
        ("IST0138", "Gateway default/c"),
        ("IST0138", "Gateway istio-system/a"),
        ("IST0138", "Gateway istio-system/b"),
    ]
    a = next(m for m in found if m.origin.endswith("/a"))
    assert a.text.startswith("Duplicate certificate in multiple gateways [istio-system/a ")
