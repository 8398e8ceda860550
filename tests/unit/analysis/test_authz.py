"""AuthorizationPolicy analyzers: IST0127 (no in-mesh workload) and IST0101 (namespaces)."""

from __future__ import annotations

from tests.unit.analysis.conftest import Run, codes

from meshgate.analysis import authz

BASE = """
apiVersion: v1
kind: Namespace
metadata: {name: httpbin}
---
apiVersion: v1
kind: Namespace
metadata: {name: prod-httpbin}
---
apiVersion: v1
kind: Pod
metadata: {name: httpbin-1, namespace: httpbin, labels: {app: httpbin, version: v1}}
spec: {containers: [{name: server}]}
---
apiVersion: v1
kind: Pod
metadata:
  name: legacy
  namespace: httpbin
  labels: {app: legacy, sidecar.istio.io/inject: "false"}
spec: {containers: [{name: server}]}
"""


def policy(name: str, namespace: str, spec: str) -> str:
    return f"""
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: {name}, namespace: {namespace}}}
spec: {spec}
"""


def test_policies_with_workloads_are_clean(run: Run) -> None:
    text = (
        BASE
        + policy("ns-wide", "httpbin", "{}")
        + policy("selected", "httpbin", "{selector: {matchLabels: {app: httpbin}}}")
        + policy("mesh-wide", "istio-system", "{}")
        + policy("mesh-selected", "istio-system", "{selector: {matchLabels: {version: v1}}}")
    )
    assert run(text, authz.policies) == []


def test_policies_without_workloads(run: Run) -> None:
    text = (
        BASE
        + policy("nopods", "httpbin", "{selector: {matchLabels: {app: bogus}}}")
        + policy("empty-ns", "httpbin-empty", "{}")
        + policy("mesh-bogus", "istio-system", "{selector: {matchLabels: {version: bogus}}}")
        # the only pod it selects runs without a proxy: the policy does nothing
        + policy("ineffective", "httpbin", "{selector: {matchLabels: {app: legacy}}}")
    )
    found = run(text, authz.policies)
    assert codes(found) == [
        ("IST0127", "AuthorizationPolicy httpbin-empty/empty-ns"),
        ("IST0127", "AuthorizationPolicy httpbin/ineffective"),
        ("IST0127", "AuthorizationPolicy httpbin/nopods"),
        ("IST0127", "AuthorizationPolicy istio-system/mesh-bogus"),
    ]
    assert "following labels: app=bogus" in next(m.text for m in found if "nopods" in m.origin)


def test_source_namespaces_must_exist(run: Run) -> None:
    spec = (
        '{rules: [{from: [{source: {namespaces: ["prod-*", "*-httpbin", "*-bogus", "*", '
        '"httpbin"], notNamespaces: ["bogus-*"]}}]}]}'
    )
    found = run(BASE + policy("bogus-ns", "httpbin", spec), authz.policies)
    assert sorted(m.text for m in found) == [
        'Referenced namespace not found: "*-bogus"',
        'Referenced namespace not found: "bogus-*"',
    ]
