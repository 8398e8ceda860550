"""Sidecars that will not get the client certificate a DestinationRule gives them (MG2005).

Rules of this module:
- A DestinationRule with a workloadSelector and MUTUAL ``credentialName`` makes the sidecars
  it selects (its own namespace's pods, in the mesh, not gateways) ask istiod for that
  Secret's key; istiod serves it only when the pod's service account may list Secrets in
  its namespace (``security.secretaccess``, the check the control plane itself applies).
- One message per rule, credential and service account, naming the pods; none when the
  account may list Secrets, or when no pod is selected (nothing asks).
- Istio has no analyzer for this: the code is meshgate's.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from meshgate.analysis import messages as msg
from meshgate.analysis.context import ROUTER_ANNOTATION, AnalysisContext, Entry, selects
from meshgate.api.kinds.istio_networking import DestinationRule
from meshgate.api.kinds.kubernetes import Pod
from meshgate.api.kinds.rbac import ClusterRole, ClusterRoleBinding, Role, RoleBinding
from meshgate.model.fields import get, str_map
from meshgate.security.secretaccess import RbacIndex, keyed_credentials


def _pods_phrase(names: list[str]) -> str:
    return f"pod {names[0]}" if len(names) == 1 else f"pods {', '.join(names)}"


def unreadable_credentials(ctx: AnalysisContext) -> None:
    """MG2005: a sidecar's credentialName its service account may not read."""
    bound: list[Entry[Any]] = [
        *ctx.of(Role),
        *ctx.of(ClusterRole),
        *ctx.of(RoleBinding),
        *ctx.of(ClusterRoleBinding),
    ]
    rbac = RbacIndex(e.resource for e in bound)
    for dr in ctx.of(DestinationRule):
        credentials = keyed_credentials(dr.resource)
        if not credentials:
            continue
        selector = str_map(get(dr.resource.spec.workload_selector, "match_labels"))
        by_account: dict[str, list[str]] = defaultdict(list)
        for pod in ctx.of(Pod):
            annotations = pod.resource.metadata.annotations or {}
            if (
                pod.namespace != dr.namespace
                or annotations.get(ROUTER_ANNOTATION) == "router"
                or not ctx.pod_in_mesh(pod)
                or not selects(selector, pod.labels)
            ):
                continue
            account = pod.resource.spec.service_account_name or "default"
            by_account[account].append(pod.name)
        for account, pods in sorted(by_account.items()):
            access = rbac.may_list_secrets(dr.namespace, account)
            if access.allowed:
                continue
            for credential in credentials:
                ctx.report(
                    dr,
                    msg.SIDECAR_CREDENTIAL_NOT_READABLE,
                    msg.quote(credential),
                    _pods_phrase(sorted(pods)),
                    f"{dr.namespace}/{account}",
                    dr.namespace,
                    str(dr.resource.spec.host),
                    path=("spec", "workloadSelector"),
                )
