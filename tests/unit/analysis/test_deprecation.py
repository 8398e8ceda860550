"""Deprecated fields (IST0002) and annotations (IST0135)."""

from __future__ import annotations

from tests.unit.analysis.conftest import Run, codes

from meshgate.analysis import deprecation

DEPRECATED = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: productpage, namespace: foo}
spec:
  hosts: [productpage]
  http:
  - fault: {delay: {percent: 50, fixedDelay: 5s}}
    route: [{destination: {host: productpage}}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: no-selector}
spec:
  outboundTrafficPolicy:
    mode: ALLOW_ANY
    egressProxy: {host: example, port: {number: 9080}}
"""

DEPLOYMENT = """
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: fortio}
spec:
  selector: {matchLabels: {app: fortio}}
  template:
    metadata:
      labels: {app: fortio}
      annotations: {sidecar.istio.io/inject: "true"}
    spec: {containers: [{name: fortio}]}
"""


def test_deprecated_fields(run: Run) -> None:
    found = run(DEPRECATED, deprecation.deprecated_fields)
    assert codes(found) == [
        ("IST0002", "Sidecar default/no-selector"),
        ("IST0002", "VirtualService foo/productpage"),
    ]
    assert {m.text for m in found} == {
        "Deprecated: OutboundTrafficPolicy.EgressProxy ignored",
        "Deprecated: HTTPRoute.fault.delay.percent is deprecated; use "
        "HTTPRoute.fault.delay.percentage",
    }


def test_replacement_fields_are_clean(run: Run) -> None:
    clean = DEPRECATED.replace("percent: 50", "percentage: {value: 50}").replace(
        "    egressProxy: {host: example, port: {number: 9080}}\n", ""
    )
    assert run(clean, deprecation.deprecated_fields) == []


def test_deprecated_inject_annotation(run: Run) -> None:
    found = run(DEPLOYMENT, deprecation.deprecated_annotations)
    assert codes(found) == [("IST0135", "Deployment default/fortio")]
    assert found[0].text.startswith('Annotation "sidecar.istio.io/inject" has been deprecated')
    # With the label beside it, the user knows; objects a controller made are not judged.
    labelled = DEPLOYMENT.replace(
        "{app: fortio}\n      annotations",
        '{app: fortio, sidecar.istio.io/inject: "true"}\n      annotations',
    )
    assert run(labelled, deprecation.deprecated_annotations) == []
    owned = DEPLOYMENT.replace(
        "metadata: {name: fortio}",
        "metadata: {name: fortio, ownerReferences: [{apiVersion: v1, kind: X, name: x}]}",
    )
    assert run(owned, deprecation.deprecated_annotations) == []
