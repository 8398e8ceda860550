"""MG2003: an egress gateway that workloads can go around (egressEnforcement OFF)."""

from __future__ import annotations

from tests.unit.analysis.conftest import Run, codes
from tests.unit.analysis.test_authz_peer_identity import GATEWAY
from tests.unit.cli.conftest import WALKTHROUGH

from meshgate.analysis import egress

# The seed's steps 1 and 4, with the gateway's pods and Service its controller would make.
SEED = "---\n".join(
    [*((WALKTHROUGH / n).read_text() for n in ("1-sleep.yaml", "4-egress-gateway.yaml")), GATEWAY]
)
MESH = """---
apiVersion: meshgate.io/v1alpha1
kind: MeshConfig
metadata: {{name: default}}
spec: {{egressEnforcement: {mode}}}
"""
DIRECT_VS = """---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: direct, namespace: default}
spec:
  hosts: [edition.cnn.com]
  http:
  - route:
    - destination: {host: edition.cnn.com}
"""
SHORT_NAME_VS = """---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: short, namespace: istio-system}
spec:
  hosts: [example.com]
  tcp:
  - route:
    - destination: {host: istio-egressgateway, port: {number: 80}}
"""


def test_a_route_to_the_gateway_with_enforcement_off(run: Run) -> None:
    found = run(SEED + DIRECT_VS + SHORT_NAME_VS, egress.bypassable_gateway)
    assert codes(found) == [
        ("MG2003", "VirtualService default/egressgateway-vs"),
        ("MG2003", "VirtualService istio-system/short"),
    ]
    assert "workloads can go around the gateway" in found[0].text
    assert codes(run(SEED + MESH.format(mode="OFF"), egress.bypassable_gateway))


def test_silent_when_enforced_or_without_a_gateway_route(run: Run) -> None:
    assert run(SEED + MESH.format(mode="GATEWAY_ONLY"), egress.bypassable_gateway) == []
    assert run(DIRECT_VS, egress.bypassable_gateway) == []
