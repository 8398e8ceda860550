"""NetworkPolicy: what kube-apiserver refuses, meshgate refuses before it is stored (MG1089),
naming the file, the field and the reason."""

# Case tables keep each YAML case on one line.
# ruff: noqa: E501

from __future__ import annotations

import pytest

from meshgate.api.decode import decode_text
from meshgate.api.problems import Problem
from meshgate.validation import validate_all

# Istio's egress-gateway task, verbatim.
ISTIO_RECIPE = """apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: allow-egress-to-istio-system-and-kube-dns
spec:
  podSelector: {}
  policyTypes:
  - Egress
  egress:
  - to:
    - namespaceSelector:
        matchLabels:
          kube-system: "true"
    ports:
    - protocol: UDP
      port: 53
  - to:
    - namespaceSelector:
        matchLabels:
          istio: system
"""

POLICY = """apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: p, namespace: default}}
spec: {spec}
"""


def problems(text: str) -> list[Problem]:
    result = decode_text(text, "np.yaml")
    return result.problems + validate_all(result.documents)


def errors(spec: str) -> list[tuple[str, str, str]]:
    return [(p.code, p.field, p.message) for p in problems(POLICY.format(spec=spec)) if p.is_error]


def test_istios_recipe_is_valid() -> None:
    assert problems(ISTIO_RECIPE) == []


@pytest.mark.parametrize(
    "spec",
    [
        "{}",
        "{podSelector: {matchLabels: {app: web}}, ingress: [{}]}",
        "{podSelector: {}, policyTypes: [Ingress, Egress], ingress: [], egress: []}",
        "{ingress: [{from: [{podSelector: {}, namespaceSelector: {matchLabels: {a: b}}}], ports: [{port: http}, {protocol: UDP, port: 53}, {port: 8000, endPort: 9000}, {protocol: SCTP}]}]}",
        "{egress: [{to: [{ipBlock: {cidr: 0.0.0.0/0, except: [10.0.0.0/8, 192.168.1.0/24]}}]}]}",
        "{podSelector: {matchExpressions: [{key: app, operator: In, values: [a, b]}, {key: tier, operator: DoesNotExist}]}}",
    ],
)
def test_valid_policies(spec: str) -> None:
    assert errors(spec) == []


@pytest.mark.parametrize(
    ("spec", "field", "reason"),
    [
        ("{ingress: [{ports: [{port: 0}]}]}", "spec.ingress[0].ports[0].port", "out of range"),
        ("{egress: [{ports: [{port: 70000}]}]}", "spec.egress[0].ports[0].port", "out of range"),
        (
            "{egress: [{ports: [{port: Not_A_Name}]}]}",
            "spec.egress[0].ports[0].port",
            "invalid port name",
        ),
        (
            "{egress: [{ports: [{port: 90, endPort: 80}]}]}",
            "spec.egress[0].ports[0].endPort",
            "must be greater than or equal to `port`",
        ),
        (
            "{egress: [{ports: [{port: http, endPort: 80}]}]}",
            "spec.egress[0].ports[0].endPort",
            "may not be specified when `port` is non-numeric",
        ),
        (
            "{egress: [{ports: [{endPort: 80}]}]}",
            "spec.egress[0].ports[0].endPort",
            "may not be specified when `port` is non-numeric",
        ),
        ("{egress: [{to: [{}]}]}", "spec.egress[0].to[0]", "must specify a peer"),
        (
            "{egress: [{to: [{podSelector: {}, ipBlock: {cidr: 10.0.0.0/8}}]}]}",
            "spec.egress[0].to[0]",
            "may not specify both ipBlock and another peer",
        ),
        (
            "{egress: [{to: [{ipBlock: {cidr: 10.0.0.0/33}}]}]}",
            "spec.egress[0].to[0].ipBlock.cidr",
            "must be a valid CIDR",
        ),
        (
            "{egress: [{to: [{ipBlock: {cidr: 10.0.0.1/8}}]}]}",
            "spec.egress[0].to[0].ipBlock.cidr",
            "must be a valid CIDR",
        ),
        (
            "{egress: [{to: [{ipBlock: {cidr: 10.0.0.0/8, except: [11.0.0.0/16]}}]}]}",
            "spec.egress[0].to[0].ipBlock.except[0]",
            "must be a strict subset of `cidr`",
        ),
        (
            "{egress: [{to: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.0.0.0/8]}}]}]}",
            "spec.egress[0].to[0].ipBlock.except[0]",
            "must be a strict subset of `cidr`",
        ),
        (
            "{ingress: [{from: [{namespaceSelector: {matchLabels: {'bad key!': x}}}]}]}",
            "spec.ingress[0].from[0].namespaceSelector.matchLabels",
            "invalid label key",
        ),
        (
            "{podSelector: {matchExpressions: [{key: app, operator: In}]}}",
            "spec.podSelector.matchExpressions[0].values",
            "must be specified when `operator` is 'In' or 'NotIn'",
        ),
        (
            "{podSelector: {matchExpressions: [{key: app, operator: Exists, values: [a]}]}}",
            "spec.podSelector.matchExpressions[0].values",
            "may not be specified when `operator` is 'Exists'",
        ),
        (
            "{policyTypes: [Ingress, Egress, Ingress]}",
            "spec.policyTypes",
            "more than two policyTypes",
        ),
    ],
)
def test_refused_policies_name_field_and_reason(spec: str, field: str, reason: str) -> None:
    got = errors(spec)
    assert [(code, f) for code, f, _ in got] == [("MG1089", field)], got
    assert reason in got[0][2]


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ("{policyTypes: [Outbound]}", "spec.policyTypes[0]"),
        ("{egress: [{ports: [{protocol: ICMP}]}]}", "spec.egress[0].ports[0].protocol"),
        ("{egress: [{ports: [{port: 80.5}]}]}", "spec.egress[0].ports[0].port"),
    ],
)
def test_wrong_types_are_refused_by_decoding(spec: str, field: str) -> None:
    got = [p for p in problems(POLICY.format(spec=spec)) if p.is_error]
    assert got and got[0].field == field, got


def test_a_problem_names_the_file_and_line() -> None:
    (problem,) = problems(POLICY.format(spec="{egress: [{to: [{}]}]}"))
    assert problem.file == "np.yaml"
    assert problem.line == 4
    assert str(problem) == (
        "Error: np.yaml:4: NetworkPolicy default/p: spec.egress[0].to[0]: "
        "Required value: must specify a peer"
    )
