"""Who may list Secrets: Kubernetes' RBAC authorizer answering istiod's SubjectAccessReview
(verb list, resource secrets, the proxy's namespace, no name)."""

from __future__ import annotations

import pytest
from tests.golden.seedworld import decode

from meshgate.security.secretaccess import RbacIndex


def _index(yaml: str) -> RbacIndex:
    return RbacIndex(decode(yaml, "rbac.yaml"))


def _role(verbs: str = "[get, list, watch]", extra: str = "", kind: str = "Role") -> str:
    ns = "namespace: default, " if kind == "Role" else ""
    return f"""---
apiVersion: rbac.authorization.k8s.io/v1
kind: {kind}
metadata: {{{ns}name: reader}}
rules:
- apiGroups: [""]
  resources: [secrets]
  verbs: {verbs}
{extra}"""


def _binding(
    subject: str = "{kind: ServiceAccount, name: sleep, namespace: default}",
    ref_kind: str = "Role",
    ref_name: str = "reader",
    kind: str = "RoleBinding",
) -> str:
    ns = "namespace: default, " if kind == "RoleBinding" else ""
    return f"""---
apiVersion: rbac.authorization.k8s.io/v1
kind: {kind}
metadata: {{{ns}name: sleep-reads}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: {ref_kind}, name: {ref_name}}}
subjects: [{subject}]
"""


def test_the_tasks_role_and_binding_allow_the_sleep_account() -> None:
    access = _index(_role() + _binding()).may_list_secrets("default", "sleep")
    assert access.allowed
    assert access.reason == "RoleBinding default/sleep-reads (Role reader)"


def test_nothing_bound_is_denied_with_istiods_words() -> None:
    access = _index(_role()).may_list_secrets("default", "sleep")
    assert not access.allowed
    assert access.reason == "sleep/default is not authorized to read secrets: "


def test_another_account_or_namespace_is_not_granted() -> None:
    index = _index(_role() + _binding())
    assert not index.may_list_secrets("default", "httpbin").allowed
    assert not index.may_list_secrets("other", "sleep").allowed


@pytest.mark.parametrize(
    "verbs, allowed",
    [("[get]", False), ("[get, watch]", False), ("[list]", True), ('["*"]', True)],
)
def test_istiod_asks_for_list(verbs: str, allowed: bool) -> None:
    index = _index(_role(verbs) + _binding())
    assert index.may_list_secrets("default", "sleep").allowed is allowed


def test_a_rule_naming_resources_grants_no_list() -> None:
    named = _role(extra="  resourceNames: [client-credential]\n")
    assert not _index(named + _binding()).may_list_secrets("default", "sleep").allowed


def test_other_groups_or_resources_grant_nothing() -> None:
    apps = _role().replace('apiGroups: [""]', "apiGroups: [apps]")
    maps = _role().replace("resources: [secrets]", "resources: [configmaps]")
    wild = (
        _role()
        .replace('apiGroups: [""]', 'apiGroups: ["*"]')
        .replace("resources: [secrets]", 'resources: ["*"]')
    )
    assert not _index(apps + _binding()).may_list_secrets("default", "sleep").allowed
    assert not _index(maps + _binding()).may_list_secrets("default", "sleep").allowed
    assert _index(wild + _binding()).may_list_secrets("default", "sleep").allowed


def test_a_service_account_subject_without_namespace_means_the_bindings() -> None:
    subject = "{kind: ServiceAccount, name: sleep}"
    assert _index(_role() + _binding(subject)).may_list_secrets("default", "sleep").allowed


@pytest.mark.parametrize(
    "subject, allowed",
    [
        ("{kind: User, apiGroup: rbac.authorization.k8s.io, "
         "name: 'system:serviceaccount:default:sleep'}", True),
        ("{kind: Group, apiGroup: rbac.authorization.k8s.io, name: 'system:serviceaccounts'}",
         True),
        ("{kind: Group, apiGroup: rbac.authorization.k8s.io, "
         "name: 'system:serviceaccounts:default'}", True),
        ("{kind: Group, apiGroup: rbac.authorization.k8s.io, "
         "name: 'system:serviceaccounts:other'}", False),
        ("{kind: User, apiGroup: rbac.authorization.k8s.io, name: sleep}", False),
    ],
)  # fmt: skip
def test_users_and_groups_of_a_service_account(subject: str, allowed: bool) -> None:
    index = _index(_role() + _binding(subject))
    assert index.may_list_secrets("default", "sleep").allowed is allowed


def test_a_rolebinding_to_a_clusterrole_grants_in_its_namespace_only() -> None:
    index = _index(_role(kind="ClusterRole") + _binding(ref_kind="ClusterRole"))
    assert index.may_list_secrets("default", "sleep").allowed
    moved = _binding("{kind: ServiceAccount, name: sleep, namespace: other}", "ClusterRole")
    assert not _index(_role(kind="ClusterRole") + moved).may_list_secrets("other", "sleep").allowed


def test_a_clusterrolebinding_grants_everywhere() -> None:
    crb = _binding(
        "{kind: ServiceAccount, name: sleep, namespace: other}",
        "ClusterRole",
        kind="ClusterRoleBinding",
    )
    access = _index(_role(kind="ClusterRole") + crb).may_list_secrets("other", "sleep")
    assert access.allowed and access.reason == "ClusterRoleBinding sleep-reads (ClusterRole reader)"


def test_a_missing_role_grants_nothing_and_says_so() -> None:
    access = _index(_binding()).may_list_secrets("default", "sleep")
    assert not access.allowed
    assert access.reason == (
        "sleep/default is not authorized to read secrets: "
        'RBAC: role.rbac.authorization.k8s.io "reader" not found'
    )


def test_a_role_of_another_namespace_is_not_the_bindings() -> None:
    other = _role().replace("namespace: default", "namespace: other")
    assert not _index(other + _binding()).may_list_secrets("default", "sleep").allowed


@pytest.mark.parametrize("name, allowed", [("edit", True), ("admin", True), ("view", False)])
def test_kubernetes_bootstrap_clusterroles(name: str, allowed: bool) -> None:
    index = _index(_binding(ref_kind="ClusterRole", ref_name=name))
    assert index.may_list_secrets("default", "sleep").allowed is allowed
