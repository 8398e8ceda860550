"""Sidecar selectors (IST0101, IST0110), selector-less Sidecars (IST0111), ambient (IST0167)."""

from __future__ import annotations

from tests.unit.analysis.conftest import Run, codes

from meshgate.analysis import sidecars

PODS = """
apiVersion: v1
kind: Pod
metadata: {name: productpage, labels: {app: productpage, version: v1}}
spec: {containers: [{name: app}]}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews, namespace: other, labels: {app: reviews}}
spec: {containers: [{name: app}]}
"""


def sidecar(name: str, selector: str = "", namespace: str = "default") -> str:
    ws = f"  workloadSelector: {{labels: {selector}}}\n" if selector else ""
    return f"""
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: {name}, namespace: {namespace}}}
spec:
{ws}  egress: [{{hosts: ["./*"]}}]
"""


def test_selector_must_select_a_pod_in_its_namespace(run: Run) -> None:
    text = (
        PODS
        + sidecar("good", "{app: productpage}")
        + sidecar("nonexistent", "{app: bogus}")
        + sidecar("different-ns", "{app: reviews}")
    )
    found = run(text, sidecars.selectors)
    assert codes(found) == [
        ("IST0101", "Sidecar default/different-ns"),
        ("IST0101", "Sidecar default/nonexistent"),
    ]
    assert 'Referenced selector not found: "app=bogus"' in [m.text for m in found]


def test_two_sidecars_selecting_one_pod_conflict(run: Run) -> None:
    text = PODS + sidecar("dupe-1", "{app: productpage}") + sidecar("dupe-2", "{version: v1}")
    found = run(text, sidecars.selectors)
    assert codes(found) == [
        ("IST0110", "Sidecar default/dupe-1"),
        ("IST0110", "Sidecar default/dupe-2"),
    ]
    assert found[0].text.startswith('The Sidecars [dupe-1 dupe-2] in namespace "default"')


def test_one_default_sidecar_per_namespace(run: Run) -> None:
    one_each = sidecar("a") + sidecar("b", namespace="other")
    assert run(one_each, sidecars.selectors) == []
    two = sidecar("a") + sidecar("b")
    assert codes(run(two, sidecars.selectors)) == [
        ("IST0111", "Sidecar default/a"),
        ("IST0111", "Sidecar default/b"),
    ]


def test_empty_selector_labels_count_as_no_selector(run: Run) -> None:
    # ``workloadSelector: {labels: {}}`` selects the whole namespace, like no selector.
    two = sidecar("a") + sidecar("b", "{}")
    assert codes(run(two, sidecars.selectors)) == [
        ("IST0111", "Sidecar default/a"),
        ("IST0111", "Sidecar default/b"),
    ]


AMBIENT = """
apiVersion: v1
kind: Namespace
metadata: {name: amb, labels: {istio.io/dataplane-mode: ambient}}
---
apiVersion: v1
kind: Namespace
metadata:
  name: both
  labels: {istio.io/dataplane-mode: ambient, istio-injection: enabled}
---
apiVersion: v1
kind: Pod
metadata:
  name: redirected
  namespace: amb
  labels: {app: r}
  annotations: {ambient.istio.io/redirection: enabled}
"""


def test_sidecars_for_ambient_workloads_are_ineffective(run: Run) -> None:
    text = (
        AMBIENT
        + sidecar("ns-wide", namespace="amb")
        + sidecar("pod", "{app: r}", namespace="amb")
        + sidecar("pod-too", "{app: r}", namespace="amb")
        # sidecar injection wins over the ambient label: a normal namespace-wide Sidecar
        + sidecar("injected", namespace="both")
    )
    found = run(text, sidecars.selectors)
    assert codes(found) == [
        ("IST0167", "Sidecar amb/ns-wide"),
        ("IST0167", "Sidecar amb/pod"),
        ("IST0167", "Sidecar amb/pod-too"),
    ]
    texts = {m.origin: m.text for m in found}
    assert texts["Sidecar amb/ns-wide"] == (
        "The policy has no impact: namespace is in ambient mode, the policy has no impact."
    )
    assert "selected workload is in ambient mode" in texts["Sidecar amb/pod"]
