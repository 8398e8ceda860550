"""Role, ClusterRole, RoleBinding, ClusterRoleBinding: what kube-apiserver refuses, meshgate
refuses before it is stored (MG1094), naming the field; Istio's task manifests pass."""

# ruff: noqa: E501

from __future__ import annotations

import pytest

from meshgate.api.decode import decode_text
from meshgate.validation import validate_all

# The Role and RoleBinding of Istio's "mutual TLS origination at the sidecar" task.
ISTIO_TASK = """apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: client-credential-role, namespace: default}
rules:
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: client-credential-role-binding, namespace: default}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: client-credential-role
subjects:
- kind: ServiceAccount
  name: curl
  namespace: default
"""


def problems(text: str) -> list[str]:
    result = decode_text(text, "rbac.yaml")
    assert not [p for p in result.problems if p.is_error], result.problems
    return [f"{p.field}: {p.message} [{p.code}]" for p in validate_all(result.documents)]


def test_istios_task_manifests_are_valid() -> None:
    assert problems(ISTIO_TASK) == []


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        (
            "kind: Role\nmetadata: {name: r, namespace: d}\nrules: [{apiGroups: [''], resources: [pods], verbs: []}]",
            "rules[0].verbs: Required value: verbs must contain at least one value [MG1094]",
        ),
        (
            "kind: Role\nmetadata: {name: r, namespace: d}\nrules: [{verbs: [get], resources: [pods]}]",
            "rules[0].apiGroups: Required value: resource rules must supply at least one api group [MG1094]",
        ),
        (
            "kind: Role\nmetadata: {name: r, namespace: d}\nrules: [{verbs: [get], nonResourceURLs: [/healthz]}]",
            "rules[0].nonResourceURLs: Invalid value: namespaced rules cannot apply to non-resource URLs [MG1094]",
        ),
        (
            "kind: RoleBinding\nmetadata: {name: b, namespace: d}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: Pod, name: r}",
            'roleRef.kind: Unsupported value: "Pod": supported values: "Role", "ClusterRole" [MG1094]',
        ),
        (
            "kind: ClusterRoleBinding\nmetadata: {name: b}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: r}\nsubjects: [{kind: ServiceAccount, name: s}]",
            "subjects[0].namespace: Required value [MG1094]",
        ),
        (
            "kind: RoleBinding\nmetadata: {name: b, namespace: d}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: r}\nsubjects: [{kind: User, name: bob}]",
            'subjects[0].apiGroup: Unsupported value: "": supported values: "rbac.authorization.k8s.io" [MG1094]',
        ),
    ],
)
def test_refused_as_kube_apiserver_refuses(doc: str, expected: str) -> None:
    assert problems("apiVersion: rbac.authorization.k8s.io/v1\n" + doc) == [expected]


def test_a_binding_needs_a_role_ref() -> None:
    result = decode_text(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: b}\n",
        "x.yaml",
    )
    assert any("roleRef" in p.field for p in result.problems if p.is_error)
