"""Gateway analyzers, on inputs modelled on Istio's analyzer testdata."""

from __future__ import annotations

import base64

from tests.unit.analysis.conftest import Run, codes
from tests.unit.analysis.test_gateway_credentials import certificate as _pair

from meshgate.analysis import gateways


def certificate() -> dict[str, bytes]:
    cert, key = _pair()
    return {"tls.crt": cert, "tls.key": key}


def tls_secret(name: str, namespace: str, data: dict[str, bytes]) -> str:
    items = "".join(f"  {k}: {base64.b64encode(v).decode()}\n" for k, v in data.items())
    meta = f"{{name: {name}, namespace: {namespace}}}"
    return f"\n---\napiVersion: v1\nkind: Secret\nmetadata: {meta}\ndata:\n{items}"


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
    assert found[0].text == (
        "The gateway is listening on a target port (port 8888) that is not defined in the "
        "Service associated with its workload instances (Pod selector istio=ingressgateway). "
        "If you need to access the gateway port through the gateway Service, it will not be "
        "available."
    )
    assert found[0].level.value == "Warning" and found[0].line == 28  # the selector's line
    # A UDP port of the Service does not expose the gateway's port; a TCP one does.
    udp = INGRESS_POD.replace(
        "- {name: https, port: 443}", "- {name: dns, port: 53, protocol: UDP}"
    )
    assert codes(run(udp + gateway("dns", 53), gateways.gateway_ports)) == [
        ("IST0162", "Gateway default/dns")
    ]
    # A Service of another namespace, or one not selecting the pods, exposes nothing.
    elsewhere = INGRESS_POD.replace(
        "namespace: istio-system\nspec:\n  selector", "namespace: x\nspec:\n  selector"
    )
    assert codes(run(elsewhere + gateway("x", 443), gateways.gateway_ports)) == [
        ("IST0162", "Gateway default/x")
    ]


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
    wrong_ns = tls_secret("my-cert", "default", certificate())
    found = run(INGRESS_POD + tls_gateway + wrong_ns, gateways.gateway_secrets)
    assert [m.type.code for m in found] == ["IST0101"]
    secret = tls_secret("my-cert", "istio-system", certificate())
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
