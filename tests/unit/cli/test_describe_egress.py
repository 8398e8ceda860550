"""``describe pod``'s Egress section: which rule lets the pod out, and whether it can go
around the egress gateway."""

from __future__ import annotations

from tests.unit.cli.conftest import Run

GATEWAY_PODS = """apiVersion: v1
kind: Pod
metadata:
  name: istio-egressgateway-1
  namespace: istio-system
  labels: {app: istio-egressgateway, istio: egressgateway}
  annotations: {meshgate.io/proxy-type: router}
spec: {containers: [{name: istio-proxy, image: envoy}]}
---
apiVersion: v1
kind: Service
metadata: {name: istio-egressgateway, namespace: istio-system}
spec:
  selector: {istio: egressgateway}
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Pod
metadata: {name: app, labels: {app: sleep}}
spec: {containers: [{name: app, image: curl}]}
"""

GATEWAY_ONLY = """apiVersion: meshgate.io/v1alpha1
kind: MeshConfig
metadata: {name: default}
spec: {outboundTrafficPolicy: {mode: REGISTRY_ONLY}, egressEnforcement: GATEWAY_ONLY}
"""

ISOLATED = """apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: only-dns}
spec:
  podSelector: {matchLabels: {app: sleep}}
  policyTypes: [Egress]
"""


def section(out: str) -> list[str]:
    lines = out.splitlines()
    start = lines.index("Egress:")
    return lines[start : lines.index("Events:  <none>")]


def test_off_with_a_gateway_route_says_workloads_can_go_around_it(walkthrough: Run) -> None:
    walkthrough("apply", "-f", "-", input=GATEWAY_PODS)
    got = section(walkthrough("describe", "pod", "app").stdout)
    assert got[:3] == [
        "Egress:",
        "  Enforcement:  OFF (MeshConfig egressEnforcement)",
        "  Exit:         direct: this pod can reach external hosts without any gateway",
    ]
    warning = " ".join(" ".join(line.split()) for line in got[3:])
    assert warning.startswith(
        "Warning: workloads can go around the egress gateway "
        "istio-egressgateway.istio-system.svc.cluster.local (VirtualService "
        "default/egressgateway-vs routes to it)"
    )
    assert "Set MeshConfig egressEnforcement: GATEWAY_ONLY" in warning
    gw = section(
        walkthrough("describe", "pod", "istio-egressgateway-1", "-n", "istio-system").stdout
    )
    assert gw[2] == "  Exit:         this pod is a gateway: it may reach external hosts"


def test_gateway_only_and_network_policies(walkthrough: Run) -> None:
    walkthrough("apply", "-f", "-", input=GATEWAY_PODS)
    walkthrough("apply", "-f", "-", input=GATEWAY_ONLY)
    got = section(walkthrough("describe", "pod", "app").stdout)
    assert got == [
        "Egress:",
        "  Enforcement:  GATEWAY_ONLY (MeshConfig egressEnforcement)",
        "  Exit:         only through an egress gateway: the node refuses this pod's own "
        "connections to external hosts",
    ]
    walkthrough("apply", "-f", "-", input=ISOLATED)
    got = section(walkthrough("describe", "pod", "app").stdout)
    assert got[2] == "  Exit:         as its egress NetworkPolicies allow: default/only-dns"


def test_other_kinds_have_no_egress_section(walkthrough: Run) -> None:
    assert "Egress:" not in walkthrough("describe", "svc", "sleep").stdout
