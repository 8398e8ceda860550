"""The ``Security:`` section of ``describe pod``: who the pod is and what guards its inbound side.

Rules:
- Pure: the pod and the mesh's objects (canonical wire dicts) in, lines out; the decisions
  are the translator's own (``security.peerauth``, ``security.policies``), so the page never
  disagrees with what the proxy enforces.
- Identity: the SPIFFE ID of the pod's service account (MeshConfig ``trustDomain``).
- mTLS: the mode for any port and each port a workload policy sets, with the
  PeerAuthentications that decided; said plainly when clients send plaintext (no sidecar
  label, PeerAuthentication ``DISABLE``).
- AuthorizationPolicies: those that apply to the pod, by action.
- Secrets (sidecars given a MUTUAL ``credentialName`` by a DestinationRule selecting them):
  whether the service account may read them, by ``security.secretaccess`` (the control
  plane's own check), and what is not delivered when it may not.
- A pod without a sidecar gets one line saying none of this applies to it.
"""

from __future__ import annotations

from typing import Any

from meshgate.model.proxy import TLS_MODE_ISTIO, TLS_MODE_LABEL
from meshgate.security import peerauth
from meshgate.security.policies import applies_to
from meshgate.security.secretaccess import RbacIndex, keyed_credentials
from meshgate.server import workloads as wl

Obj = dict[str, Any]
ROOT_NAMESPACE = "istio-system"
RBAC_KINDS = ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")


def _mesh_spec(objs: list[Obj]) -> Obj:
    for o in objs:
        if o.get("kind") == "MeshConfig" and (o.get("metadata") or {}).get("name") == "default":
            return dict(o.get("spec") or {})
    return {}


def security_lines(pod: Obj, objs: list[Obj]) -> list[str]:
    meta = pod.get("metadata") or {}
    namespace = str(meta.get("namespace") or "default")
    labels = dict(meta.get("labels") or {})
    if not wl.wants_sidecar(pod) and not wl.is_router(pod):
        return [
            "Security:",
            "  Sidecar:      none: no mesh identity, mTLS or AuthorizationPolicy applies here",
        ]
    mesh = _mesh_spec(objs)
    root = str(mesh.get("rootNamespace") or ROOT_NAMESPACE)
    trust = str(mesh.get("trustDomain") or "cluster.local")
    account = str((pod.get("spec") or {}).get("serviceAccountName") or "default")
    lines = ["Security:", f"  Identity:     spiffe://{trust}/ns/{namespace}/sa/{account}"]
    if not wl.is_router(pod):
        lines += _mtls_lines(labels, namespace, root, objs)
    lines += _authz_lines(pod, namespace, labels, root, objs)
    if not wl.is_router(pod):
        lines += _secret_lines(namespace, labels, account, objs)
    return lines


def _secret_lines(
    namespace: str, labels: dict[str, str], account: str, objs: list[Obj]
) -> list[str]:
    uses: list[tuple[str, str]] = []
    for dr in sorted(objs, key=lambda o: str((o.get("metadata") or {}).get("name"))):
        if dr.get("kind") != "DestinationRule" or wl.namespace_of(dr) != namespace:
            continue
        selector = ((dr.get("spec") or {}).get("workloadSelector") or {}).get("matchLabels") or {}
        if dict(selector).items() <= labels.items():
            name = str(dr["metadata"]["name"])
            uses += [(credential, name) for credential in keyed_credentials(dr)]
    if not uses:
        return []
    rbac = RbacIndex(o for o in objs if o.get("kind") in RBAC_KINDS)
    access = rbac.may_list_secrets(namespace, account)
    if access.allowed:
        return [f"  Secrets:      readable: {access.reason}"]
    lines = [f"  Secrets:      not readable: {access.reason.removesuffix(': ')}"]
    for credential, rule in uses:
        lines.append(
            f"    credentialName {credential} (DestinationRule {rule}): not delivered, the "
            f"sidecar gets no client certificate (bind {namespace}/{account} to a Role "
            "allowing list on secrets)"
        )
    return lines


def _mtls_lines(labels: dict[str, str], namespace: str, root: str, objs: list[Obj]) -> list[str]:
    policies = [o for o in objs if o.get("kind") == "PeerAuthentication"]
    mtls = peerauth.inbound_mtls(policies, namespace, labels, root)
    decided = ", ".join(mtls.policies) or "none: Istio's default"
    lines = [f"  mTLS:         {mtls.default} (PeerAuthentication {decided})"]
    for port in sorted(mtls.ports):
        lines.append(f"    port {port}:    {mtls.ports[port]}")
    if labels.get(TLS_MODE_LABEL) != TLS_MODE_ISTIO:
        lines.append(
            f"  Note:         no label {TLS_MODE_LABEL}: {TLS_MODE_ISTIO}, so clients send "
            "plaintext and the pod is reached directly (re-create it to get an inbound side)"
        )
    elif peerauth.service_mtls(policies, namespace, root) == peerauth.DISABLE:
        lines.append("  Note:         clients send plaintext here (PeerAuthentication DISABLE)")
    return lines


def _authz_lines(
    pod: Obj, namespace: str, labels: dict[str, str], root: str, objs: list[Obj]
) -> list[str]:
    services = {
        str((s.get("metadata") or {}).get("name"))
        for s in objs
        if s.get("kind") == "Service"
        and wl.namespace_of(s) == namespace
        and (s.get("spec") or {}).get("selector")
        and ((s.get("spec") or {}).get("selector") or {}).items() <= labels.items()
    }
    applying = [
        ap
        for ap in objs
        if ap.get("kind") == "AuthorizationPolicy"
        and applies_to(
            ap,
            namespace=namespace,
            labels=labels,
            root_namespace=root,
            router=wl.is_router(pod),
            services=services,
        )
    ]
    if not applying:
        return ["  Authorization: no AuthorizationPolicy applies: every request is allowed"]
    lines = ["  Authorization:"]
    for ap in sorted(applying, key=lambda a: (wl.namespace_of(a), a["metadata"]["name"])):
        action = str((ap.get("spec") or {}).get("action") or "ALLOW")
        lines.append(f"    {action:<6} {wl.namespace_of(ap)}/{ap['metadata']['name']}")
    return lines
