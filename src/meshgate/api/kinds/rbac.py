"""rbac.authorization.k8s.io/v1: Role, ClusterRole, RoleBinding, ClusterRoleBinding.

Rules of this module:
- Typed as the Kubernetes API types them (``PolicyRule``, ``RoleRef``, ``Subject``);
  unknown fields are kept as written (``KubeWire`` is open), typed ones are strict.
- ``roleRef`` and each ``subjects[]`` entry are required where Kubernetes requires
  them; what a type cannot say (verbs present, a roleRef to a Role or ClusterRole, a
  service account subject with a namespace) is ``meshgate.validation.rbac``'s.
- Nothing here grants anything by itself: meshgate reads these kinds where Istio does
  (a sidecar's access to a Secret named by ``credentialName``).
"""

from __future__ import annotations

from pydantic import ConfigDict, Field

from meshgate.api.kinds.types import KubeWire
from meshgate.api.meta import Resource
from meshgate.api.registry import KindInfo, register

GROUP = "rbac.authorization.k8s.io"


class _RbacResource(Resource):
    model_config = ConfigDict(extra="allow", strict=True)


class PolicyRule(KubeWire):
    verbs: list[str]
    api_groups: list[str] | None = None
    resources: list[str] | None = None
    resource_names: list[str] | None = None
    non_resource_urls: list[str] | None = Field(default=None, alias="nonResourceURLs")


class RoleRef(KubeWire):
    api_group: str
    kind: str
    name: str


class Subject(KubeWire):
    kind: str
    name: str
    api_group: str | None = None
    namespace: str | None = None


class Role(_RbacResource):
    rules: list[PolicyRule] | None = None


class ClusterRole(_RbacResource):
    rules: list[PolicyRule] | None = None
    aggregation_rule: dict[str, object] | None = None


class RoleBinding(_RbacResource):
    role_ref: RoleRef
    subjects: list[Subject] | None = None


class ClusterRoleBinding(_RbacResource):
    role_ref: RoleRef
    subjects: list[Subject] | None = None


for _kind, _plural, _namespaced, _model in (
    ("Role", "roles", True, Role),
    ("ClusterRole", "clusterroles", False, ClusterRole),
    ("RoleBinding", "rolebindings", True, RoleBinding),
    ("ClusterRoleBinding", "clusterrolebindings", False, ClusterRoleBinding),
):
    register(
        KindInfo(
            group=GROUP,
            kind=_kind,
            versions=("v1",),
            plural=_plural,
            singular=_kind.lower(),
            short_names=(),
            namespaced=_namespaced,
            model=_model,
        )
    )
