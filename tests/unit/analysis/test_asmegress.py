"""MG2010: an ASMEgressTrafficPolicy the controller cannot apply (gateway, ports, conflicts)."""

from __future__ import annotations

from tests.unit.analysis.conftest import Run, codes

from meshgate.analysis.asmegress import policies_compile

POLICY = """apiVersion: istio.alibabacloud.com/v1beta1
kind: ASMEgressTrafficPolicy
metadata:
  name: egress-by-egressgateway-a
  namespace: istio-egress
spec:
  byEgressGateway:
    name: egressgateway-a
  egressRules:
  - from:
    - namespace: mytest
      workloadSelector:
        app: sleep-a
    to:
    - name: httpbin-service-http
      hosts: [www.httpbin.org, httpbin.org]
      port: {name: http, number: 80, protocol: HTTP}
      byEgressGateway: {port: 80}
"""
GATEWAY = """---
apiVersion: istio.alibabacloud.com/v1beta1
kind: IstioGateway
metadata: {name: egressgateway-a, namespace: istio-system}
spec:
  gatewayType: egress
  ports: [{name: http-0, port: 80, protocol: TCP, targetPort: 80}]
"""
HAND_WRITTEN_VS = """---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: httpbin-by-hand, namespace: default}
spec:
  hosts: [httpbin.org]
  http:
  - route:
    - destination: {host: httpbin.org}
"""


def test_a_policy_that_compiles_says_nothing(run: Run) -> None:
    assert run(POLICY + GATEWAY, policies_compile) == []


def test_a_missing_gateway_is_an_error(run: Run) -> None:
    found = run(POLICY, policies_compile)
    assert codes(found) == [
        ("MG2010", "ASMEgressTrafficPolicy istio-egress/egress-by-egressgateway-a")
    ]
    assert 'not applied (Failed): spec.byEgressGateway.name: no IstioGateway "egressgateway-a"' in (
        found[0].text
    )


def test_a_hand_written_mesh_route_for_a_policy_host_conflicts(run: Run) -> None:
    found = run(POLICY + GATEWAY + HAND_WRITTEN_VS, policies_compile)
    assert codes(found) == [
        ("MG2010", "ASMEgressTrafficPolicy istio-egress/egress-by-egressgateway-a")
    ]
    assert (
        "(Conflict): not applied: VirtualService default/httpbin-by-hand also routes host "
        "httpbin.org in the mesh" in found[0].text
    )
    assert found[0].line == 6  # the policy's spec
