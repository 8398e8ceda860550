"""May a sidecar read its namespace's Secrets? Kubernetes RBAC, asked the way istiod asks it.

Istio serves a ``credentialName`` (``kubernetes://NAME``) to a proxy over SDS only after a
SubjectAccessReview: may ``system:serviceaccount:NS:SA`` ``list`` ``secrets`` (core API
group) in NS, with no resource name (istio/istio ``pilot/pkg/credentials/kube/secrets.go``
``Authorize`` and ``pilot/pkg/xds/sds.go`` ``filterAuthorizedResources``). This module
answers that question from the Roles and bindings meshgate stores.

Rules of this module:
- The request is exactly istiod's: verb ``list``, apiGroup ``""``, resource ``secrets``, the
  proxy's namespace, no name. So ``get`` alone grants nothing, and a rule restricted by
  ``resourceNames`` grants nothing either (Kubernetes: a request without a name never
  matches a rule that lists names).
- Kubernetes' RBAC authorizer decides (``plugin/pkg/auth/authorizer/rbac``): every
  ClusterRoleBinding, then every RoleBinding of the namespace; a RoleBinding's roleRef is a
  Role of its own namespace or a ClusterRole, a ClusterRoleBinding's a ClusterRole. A rule
  allows when its verbs hold ``list`` or ``*``, its apiGroups ``""`` or ``*``, its
  resources ``secrets`` or ``*``, and it names no resourceNames.
- Subjects: ``ServiceAccount`` NAME in its ``namespace`` (in a RoleBinding an empty
  namespace means the binding's own, as the authorizer defaults it); ``User``
  ``system:serviceaccount:NS:SA``; ``Group`` ``system:serviceaccounts``,
  ``system:serviceaccounts:NS`` or ``system:authenticated`` (a service account's groups).
- A binding whose role does not exist grants nothing; as the authorizer, the denial's
  reason then says so (``RBAC: role.rbac.authorization.k8s.io "x" not found``).
- Kubernetes' bootstrap ClusterRoles that can list Secrets (``cluster-admin``, ``admin``,
  ``edit``) and ``view`` (which cannot) exist unless a stored ClusterRole of that name
  replaces them.
- Not modelled: a ClusterRole's ``aggregationRule`` (its rules are filled by a controller
  meshgate does not run: only the rules written count).
- Only certificates and keys need the permission; CA bundles (``NAME-cacert``) are public,
  as in Istio (``translate.secrets`` applies this).
- Gateways are never asked: Istio's gateway installs (Helm charts, the operator) give the
  gateway's service account a Role to read its namespace's Secrets, and meshgate's
  gateways are those installs.
- Pure: objects in (typed resources or wire dicts), a decision out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from meshgate.model.fields import get, get_list, get_str

GROUP = "rbac.authorization.k8s.io"
VERB, RESOURCE = "list", "secrets"  # istiod's SubjectAccessReview

_ALL = {"verbs": ["*"], "api_groups": ["*"], "resources": ["*"]}
_SECRETS = {"verbs": ["get", "list", "watch"], "api_groups": [""], "resources": ["secrets"]}
BOOTSTRAP_CLUSTER_ROLES: dict[str, list[dict[str, list[str]]]] = {
    "cluster-admin": [_ALL],
    "admin": [_SECRETS],
    "edit": [_SECRETS],
    "view": [],  # reads much, never Secrets
}


@dataclass(frozen=True)
class Access:
    """The answer: allowed or not, and why (the binding that allowed, or Istio's words)."""

    allowed: bool
    reason: str


def username(namespace: str, service_account: str) -> str:
    return f"system:serviceaccount:{namespace}:{service_account}"


def _name(obj: Any) -> str:
    return get_str(get(obj, "metadata"), "name")


def _namespace(obj: Any) -> str:
    return get_str(get(obj, "metadata"), "namespace") or "default"


def _rule_allows(rule: Any) -> bool:
    if get_list(rule, "resource_names"):
        return False  # istiod asks without a name: a named rule never matches
    verbs = {str(v) for v in get_list(rule, "verbs")}
    groups = {str(g) for g in get_list(rule, "api_groups")}
    resources = {str(r) for r in get_list(rule, "resources")}
    return (
        bool(verbs & {VERB, "*"}) and bool(groups & {"", "*"}) and bool(resources & {RESOURCE, "*"})
    )


def _subject_matches(subject: Any, namespace: str, account: str, binding_ns: str) -> bool:
    kind, name = get_str(subject, "kind"), get_str(subject, "name")
    if kind == "ServiceAccount":
        sa_namespace = get_str(subject, "namespace") or binding_ns
        return bool(sa_namespace) and (sa_namespace, name) == (namespace, account)
    if kind == "User":
        return name == username(namespace, account)
    if kind == "Group":
        groups = ("system:serviceaccounts", f"system:serviceaccounts:{namespace}")
        return name in (*groups, "system:authenticated")
    return False


class RbacIndex:
    """The Roles, ClusterRoles and bindings of one configuration, by namespace and name."""

    def __init__(self, objects: Iterable[Any]) -> None:
        self.roles: dict[tuple[str, str], Any] = {}
        self.cluster_roles: dict[str, Any] = {}
        self.role_bindings: dict[str, list[Any]] = defaultdict(list)
        self.cluster_role_bindings: list[Any] = []
        for obj in objects:
            kind = get_str(obj, "kind")
            if kind == "Role":
                self.roles[(_namespace(obj), _name(obj))] = obj
            elif kind == "ClusterRole":
                self.cluster_roles[_name(obj)] = obj
            elif kind == "RoleBinding":
                self.role_bindings[_namespace(obj)].append(obj)
            elif kind == "ClusterRoleBinding":
                self.cluster_role_bindings.append(obj)
        key = lambda o: _name(o)  # noqa: E731 - sorted output, whatever the input order
        self.cluster_role_bindings.sort(key=key)
        for bindings in self.role_bindings.values():
            bindings.sort(key=key)

    def _rules(self, ref: Any, binding_ns: str) -> tuple[list[Any] | None, str]:
        """The rules a roleRef points at (None when it points at nothing), and its name."""
        kind, name = get_str(ref, "kind"), get_str(ref, "name")
        if kind == "Role" and binding_ns:
            role = self.roles.get((binding_ns, name))
            return (None if role is None else get_list(role, "rules")), f"Role {name}"
        if kind == "ClusterRole":
            cluster_role = self.cluster_roles.get(name)
            if cluster_role is not None:
                return get_list(cluster_role, "rules"), f"ClusterRole {name}"
            if name in BOOTSTRAP_CLUSTER_ROLES:
                return list(BOOTSTRAP_CLUSTER_ROLES[name]), f"ClusterRole {name}"
            return None, f"ClusterRole {name}"
        return None, f"{kind} {name}"

    def may_list_secrets(self, namespace: str, service_account: str) -> Access:
        """Kubernetes' answer to istiod's question for this service account."""
        errors: list[str] = []
        candidates = [("ClusterRoleBinding", "", b) for b in self.cluster_role_bindings]
        candidates += [("RoleBinding", namespace, b) for b in self.role_bindings.get(namespace, [])]
        for kind, binding_ns, binding in candidates:
            if not any(
                _subject_matches(s, namespace, service_account, binding_ns)
                for s in get_list(binding, "subjects")
            ):
                continue
            ref = get(binding, "role_ref")
            rules, role = self._rules(ref, binding_ns)
            if rules is None:
                ref_kind = get_str(ref, "kind").lower()
                errors.append(f'{ref_kind}.{GROUP} "{get_str(ref, "name")}" not found')
                continue
            if any(_rule_allows(r) for r in rules):
                where = f"{binding_ns}/" if binding_ns else ""
                return Access(True, f"{kind} {where}{_name(binding)} ({role})")
        reason = f"RBAC: [{', '.join(errors)}]" if len(errors) > 1 else (
            f"RBAC: {errors[0]}" if errors else "")  # fmt: skip
        # istiod's own error text (Authorize), the account first.
        return Access(
            False, f"{service_account}/{namespace} is not authorized to read secrets: {reason}"
        )


def _tls_settings(policy: Any) -> list[Any]:
    found = [get(policy, "tls")]
    found += [get(p, "tls") for p in get_list(policy, "port_level_settings")]
    return [t for t in found if t is not None]


def keyed_credentials(rule: Any) -> list[str]:
    """The Secrets whose keys a DestinationRule with a workloadSelector makes the sidecars it
    selects ask for: ``credentialName`` of every MUTUAL ``tls`` (top level, port level, in
    subsets), as a plain name. SIMPLE asks only for the public CA bundle; a rule without a
    workloadSelector gives sidecars no credentialName at all (Istio); ``kubernetes://NAME``
    counts as NAME, other schemes (ConfigMaps) need no Secret."""
    spec = get(rule, "spec")
    if get(spec, "workload_selector") is None:
        return []
    policies = [get(spec, "traffic_policy")]
    policies += [get(s, "traffic_policy") for s in get_list(spec, "subsets")]
    names: list[str] = []
    for policy in policies:
        for tls in _tls_settings(policy):
            name = get_str(tls, "credential_name")
            if get_str(tls, "mode") != "MUTUAL" or not name:
                continue
            name = name.removeprefix("kubernetes://")
            if "://" not in name and name not in names:
                names.append(name)
    return names
