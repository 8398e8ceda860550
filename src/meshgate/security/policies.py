"""Which AuthorizationPolicies apply to one workload (Istio's WorkloadPolicyMatcher).

Rules of this module (pure, no Envoy types, so ``analysis`` can use it too):
- Only policies in the workload's namespace or in the mesh root namespace (MeshConfig
  ``rootNamespace``, ``istio-system`` by default) are candidates.
- A policy without ``targetRef(s)`` applies when its ``selector.matchLabels`` are a subset
  of the workload's labels; no selector selects every workload, so a selector-less policy
  in the root namespace is mesh-wide and one elsewhere covers its whole namespace.
- A policy with ``targetRef(s)`` ignores its selector and never applies to a sidecar (as in
  Istio, where targets name gateways and waypoints only). It applies to a gateway (router)
  pod in the policy's own namespace (a target's ``namespace``, when written, must be that
  one) when some target names:
  - ``gateway.networking.k8s.io`` ``Gateway`` X and the pod is labelled
    ``gateway.networking.k8s.io/gateway-name: X`` (Istio's rule for Gateway API gateways);
  - core ``Service`` X and a Kubernetes Service X in that namespace selects the pod. meshgate
    deploys gateways from IstioGateway resources (Deployment plus a Service of the same
    name), not from Gateway API resources: naming that Service is how to target one, e.g.
    ``targetRefs: [{kind: Service, name: istio-egressgateway}]`` in ``istio-system``.
  Other kinds (ServiceEntry, GatewayClass: waypoints only in Istio) match nothing here.
- Policies come back in snapshot order (namespace, name); the order of Envoy's RBAC policy
  map does not change a decision.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from meshgate.model.fields import get, get_list, get_str, str_map
from meshgate.model.proxy import Proxy
from meshgate.model.snapshot import Snapshot

GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"
GATEWAY_API_GROUP = "gateway.networking.k8s.io"
CORE_GROUPS = ("", "core")


def target_refs(policy: Any) -> list[Any]:
    """``targetRefs``, else ``[targetRef]``, else none (Istio's GetTargetRefs)."""
    spec = get(policy, "spec")
    refs = get_list(spec, "target_refs")
    if not refs and get(spec, "target_ref") is not None:
        refs = [get(spec, "target_ref")]
    return refs


def applies_to(
    policy: Any,
    *,
    namespace: str,
    labels: Mapping[str, str],
    root_namespace: str,
    router: bool,
    services: Collection[str] = (),
) -> bool:
    """Does ``policy`` apply to a workload in ``namespace`` with ``labels``?

    ``services`` names the Kubernetes Services of ``namespace`` that select the workload
    (only targetRefs of kind Service read it).
    """
    meta = get(policy, "metadata")
    policy_ns = get_str(meta, "namespace") or "default"
    if policy_ns not in (namespace, root_namespace):
        return False
    refs = target_refs(policy)
    if not refs:
        selector = str_map(get(get(get(policy, "spec"), "selector"), "match_labels"))
        return all(labels.get(k) == v for k, v in selector.items())
    if not router or policy_ns != namespace:
        return False
    for ref in refs:
        if get_str(ref, "namespace") not in ("", namespace):
            continue  # cross-namespace targets are refused by validation and match nothing
        group, kind, name = get_str(ref, "group"), get_str(ref, "kind"), get_str(ref, "name")
        gateway = labels.get(GATEWAY_NAME_LABEL)
        if group == GATEWAY_API_GROUP and kind == "Gateway" and gateway and gateway == name:
            return True
        if group in CORE_GROUPS and kind == "Service" and name in services:
            return True
    return False


def selecting_services(snapshot: Snapshot, proxy: Proxy) -> set[str]:
    """Names of the Kubernetes Services in the proxy's namespace that select its pod."""
    return {
        s.name
        for s in snapshot.services
        if s.is_kubernetes
        and s.namespace == proxy.namespace
        and s.selector
        and all(proxy.labels.get(k) == v for k, v in s.selector.items())
    }


def policies_for(snapshot: Snapshot, proxy: Proxy) -> list[Any]:
    """The AuthorizationPolicies that apply to ``proxy``'s workload, in snapshot order."""
    root = snapshot.mesh.root_namespace
    services: set[str] | None = None
    result = []
    for policy in snapshot.authorization_policies:
        if target_refs(policy) and services is None:
            services = selecting_services(snapshot, proxy)
        if applies_to(
            policy,
            namespace=proxy.namespace,
            labels=proxy.labels,
            root_namespace=root,
            router=proxy.is_router,
            services=services or (),
        ):
            result.append(policy)
    return result
