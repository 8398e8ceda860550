"""Rules for rbac.authorization.k8s.io/v1 Role, ClusterRole, RoleBinding, ClusterRoleBinding.

Rules of this module: the same contract as every rule module (report, never raise);
the checks are kube-apiserver's own (``pkg/apis/rbac/validation``), code MG1094:
- every policy rule has verbs; a resource rule names apiGroups and resources, and
  ``nonResourceURLs`` belong to ClusterRoles only (kube-apiserver's wording);
- a binding's ``roleRef`` has apiGroup ``rbac.authorization.k8s.io`` and kind ``Role``
  (RoleBinding only) or ``ClusterRole``, and a name;
- subjects are ``ServiceAccount`` (a namespace is required in a ClusterRoleBinding; an
  apiGroup, if any, is ``""``), ``User`` or ``Group`` (apiGroup
  ``rbac.authorization.k8s.io``), each with a name.
"""

from __future__ import annotations

from meshgate.api.kinds import rbac
from meshgate.validation.findings import Findings, rule

_RULE_CODE = "MG1094"


def _rules(out: Findings, rules: list[rbac.PolicyRule] | None, cluster: bool) -> None:
    for i, r in enumerate(rules or []):
        if not r.verbs:
            out.error(
                _RULE_CODE,
                "Required value: verbs must contain at least one value",
                "rules",
                i,
                "verbs",
            )
        if r.non_resource_urls:
            if not cluster:
                out.error(
                    _RULE_CODE,
                    "Invalid value: namespaced rules cannot apply to non-resource URLs",
                    "rules",
                    i,
                    "nonResourceURLs",
                )
            if r.resources or r.api_groups:
                out.error(
                    _RULE_CODE,
                    "Invalid value: rules cannot apply to both regular "
                    "resources and non-resource URLs",
                    "rules",
                    i,
                    "nonResourceURLs",
                )
            continue
        if not r.api_groups:
            out.error(
                _RULE_CODE,
                "Required value: resource rules must supply at least one api group",
                "rules",
                i,
                "apiGroups",
            )
        if not r.resources:
            out.error(
                _RULE_CODE,
                "Required value: resource rules must supply at least one resource",
                "rules",
                i,
                "resources",
            )


def _binding(
    out: Findings,
    ref: rbac.RoleRef,
    subjects: list[rbac.Subject] | None,
    cluster: bool,
) -> None:
    if ref.api_group != rbac.GROUP:
        out.error(
            _RULE_CODE,
            f'Unsupported value: "{ref.api_group}": supported values: "{rbac.GROUP}"',
            "roleRef",
            "apiGroup",
        )
    kinds = ("ClusterRole",) if cluster else ("Role", "ClusterRole")
    if ref.kind not in kinds:
        supported = ", ".join(f'"{k}"' for k in kinds)
        out.error(
            _RULE_CODE,
            f'Unsupported value: "{ref.kind}": supported values: {supported}',
            "roleRef",
            "kind",
        )
    if not ref.name:
        out.error(_RULE_CODE, "Required value", "roleRef", "name")
    for i, s in enumerate(subjects or []):
        if not s.name:
            out.error(_RULE_CODE, "Required value", "subjects", i, "name")
        if s.kind == "ServiceAccount":
            if s.api_group:
                out.error(
                    _RULE_CODE,
                    f'Unsupported value: "{s.api_group}": supported values: ""',
                    "subjects",
                    i,
                    "apiGroup",
                )
            if cluster and not s.namespace:
                out.error(_RULE_CODE, "Required value", "subjects", i, "namespace")
        elif s.kind in ("User", "Group"):
            if s.api_group != rbac.GROUP:
                out.error(
                    _RULE_CODE,
                    f'Unsupported value: "{s.api_group or ""}": supported values: "{rbac.GROUP}"',
                    "subjects",
                    i,
                    "apiGroup",
                )
        else:
            out.error(
                _RULE_CODE,
                f'Unsupported value: "{s.kind}": supported values: '
                '"ServiceAccount", "User", "Group"',
                "subjects",
                i,
                "kind",
            )


@rule(rbac.Role)
def _role(role: rbac.Role, out: Findings) -> None:
    _rules(out, role.rules, cluster=False)


@rule(rbac.ClusterRole)
def _cluster_role(role: rbac.ClusterRole, out: Findings) -> None:
    _rules(out, role.rules, cluster=True)


@rule(rbac.RoleBinding)
def _role_binding(rb: rbac.RoleBinding, out: Findings) -> None:
    _binding(out, rb.role_ref, rb.subjects, cluster=False)


@rule(rbac.ClusterRoleBinding)
def _cluster_role_binding(rb: rbac.ClusterRoleBinding, out: Findings) -> None:
    _binding(out, rb.role_ref, rb.subjects, cluster=True)
