"""DestinationRule hosts (IST0174), subsets (IST0173), TLS without a CA (IST0128, IST0129)."""

from __future__ import annotations

from tests.unit.analysis.conftest import Run, codes

from meshgate.analysis import destinationrules

BASE = """
apiVersion: v1
kind: Service
metadata: {name: httpbin}
spec:
  selector: {app: httpbin}
  ports: [{name: http, port: 8000}]
---
apiVersion: v1
kind: Pod
metadata:
  name: httpbin-1
  labels: {app: httpbin, version: v1}
spec:
  nodeName: node-a
  containers: [{name: app}]
"""


def rule(name: str, host: str, subsets: str) -> str:
    return f"""
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {name}}}
spec:
  host: {host}
  subsets: {subsets}
"""


def test_subset_selecting_no_pod(run: Run) -> None:
    text = BASE + rule(
        "dr", "httpbin.default.svc.cluster.local", "[{name: fake, labels: {version: v3}}]"
    )
    found = run(text, destinationrules.subsets_select_pods)
    assert codes(found) == [("IST0173", "DestinationRule default/dr")]
    assert found[0].text.startswith("The Subset fake defined in the DestinationRule")


def test_subset_selecting_a_pod_is_clean(run: Run) -> None:
    text = BASE + rule("dr", "httpbin", "[{name: v1, labels: {version: v1}}]")
    assert run(text, destinationrules.subsets_select_pods) == []


def test_unknown_host(run: Run) -> None:
    found = run(BASE + rule("fake", "nothere", "[]"), destinationrules.subsets_select_pods)
    assert codes(found) == [("IST0174", "DestinationRule default/fake")]
    assert found[0].level.value == "Warning"


def test_topology_labels_come_from_the_pod_node(run: Run) -> None:
    node = """
---
apiVersion: v1
kind: Node
metadata:
  name: node-a
  labels: {topology.kubernetes.io/region: us-west, topology.kubernetes.io/zone: ""}
"""
    region = rule("r", "httpbin", "[{name: w, labels: {topology.kubernetes.io/region: us-west}}]")
    assert run(BASE + node + region, destinationrules.subsets_select_pods) == []
    # Without the Node the label is unknown; an empty node label never matches.
    assert codes(run(BASE + region, destinationrules.subsets_select_pods))
    zone = rule("z", "httpbin", '[{name: z, labels: {topology.kubernetes.io/zone: ""}}]')
    assert codes(run(BASE + node + zone, destinationrules.subsets_select_pods))


def tls_rule(name: str, tls: str, port_tls: str = "", selector: bool = False) -> str:
    ports = (
        f"    portLevelSettings:\n    - port: {{number: 443}}\n      tls: {port_tls}\n"
        if port_tls
        else ""
    )
    ws = "  workloadSelector: {matchLabels: {app: gw}}\n" if selector else ""
    policy = f"    tls: {tls}\n" if tls else ""
    return f"""
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {name}}}
spec:
  host: db.example.com
{ws}  trafficPolicy:
{policy}{ports}"""


def test_tls_origination_without_ca_certificates_is_unverified(run: Run) -> None:
    text = (
        tls_rule("simple", "{mode: SIMPLE}")
        + tls_rule("mutual-port", "", "{mode: MUTUAL, clientCertificate: /c, privateKey: /k}")
        + tls_rule("both", "{mode: MUTUAL}", "{mode: SIMPLE}")
        + tls_rule("verified", "{mode: SIMPLE, caCertificates: /ca}")
        + tls_rule("istio", "{mode: ISTIO_MUTUAL}")
        + tls_rule("credential", "{mode: SIMPLE, credentialName: c}")
        + tls_rule("credential-gw", "{mode: SIMPLE, credentialName: c}", selector=True)
    )
    found = run(text, destinationrules.ca_certificates)
    assert codes(found) == [
        ("IST0128", "DestinationRule default/both"),
        ("IST0128", "DestinationRule default/credential"),
        ("IST0128", "DestinationRule default/simple"),
        ("IST0129", "DestinationRule default/both"),
        ("IST0129", "DestinationRule default/mutual-port"),
    ]
    port_level = next(m for m in found if m.origin.endswith("mutual-port"))
    assert port_level.text == (
        "DestinationRule default/mutual-port in namespace default has TLS mode set to MUTUAL "
        "but no caCertificates are set to validate server identity for host: db.example.com "
        "at port number:443"
    )
