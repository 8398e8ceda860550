"""AuthorizationPolicy analyzers: policies that apply to no workload, unknown namespaces.

Rules of this module (Istio's ``AuthorizationPoliciesAnalyzer``, same codes and wording):
- Only pods beside a proxy count (``AnalysisContext.pod_in_mesh``): a policy whose workloads
  all run without one is ineffective, and reported like one that selects nothing.
- In the root namespace (MeshConfig ``rootNamespace``, ``istio-system``) a policy is
  mesh-wide: with a selector, some in-mesh pod anywhere must match it (IST0127); without,
  it always applies. Elsewhere a selector-less policy needs an in-mesh pod in its namespace,
  a selector an in-mesh pod there that matches it (IST0127).
- Every ``from.source.namespaces``/``notNamespaces`` entry must match an existing namespace
  (``*``, ``prefix*`` and ``*suffix`` patterns allowed): IST0101 ``namespace``.
- Peer identities (``from.source`` principals, namespaces, serviceAccounts and their not-
  forms; ``when`` keys ``source.principal``, ``source.namespace``,
  ``source.serviceAccount``) exist only on a mutual-TLS hop. A policy using them that
  applies to a gateway pod (``security.policies``, the compiler's own rule) whose Gateways
  have no server with ``tls.mode: ISTIO_MUTUAL`` is MG2002, once per gateway workload,
  naming those Gateways, on the first such field. Gateway pods no Gateway selects serve
  nothing and are passed over.
- On a sidecar, callers come over auto mTLS unless PeerAuthentication (``security.peerauth``,
  the translator's own rule) sets ``DISABLE`` for the pod: then a policy using peer
  identities that applies to it is MG2004, once per policy, naming the first such pod.
"""

from __future__ import annotations

from collections import defaultdict

from meshgate.analysis import messages as msg
from meshgate.analysis.context import (
    ROUTER_ANNOTATION,
    AnalysisContext,
    Entry,
    selector_string,
    selects,
)
from meshgate.analysis.messages import quote
from meshgate.api.kinds.istio_networking import Gateway
from meshgate.api.kinds.istio_security import AuthorizationPolicy
from meshgate.api.kinds.kubernetes import Pod, Service
from meshgate.api.yamlsource import Path
from meshgate.security.policies import applies_to

# Source fields and condition keys that name a peer identity (mTLS only).
IDENTITY_FIELDS = (
    ("principals", "principals"),
    ("not_principals", "notPrincipals"),
    ("namespaces", "namespaces"),
    ("not_namespaces", "notNamespaces"),
    ("service_accounts", "serviceAccounts"),
    ("not_service_accounts", "notServiceAccounts"),
)
IDENTITY_KEYS = ("source.principal", "source.namespace", "source.serviceAccount")


def namespace_matches(namespace: str, pattern: str) -> bool:
    if pattern == "*":
        return True
    if pattern.startswith("*"):
        return namespace.endswith(pattern[1:])
    if pattern.endswith("*"):
        return namespace.startswith(pattern[:-1])
    return namespace.lower() == pattern.lower()


def policies(ctx: AnalysisContext) -> None:
    pods: dict[str, list[dict[str, str]]] = defaultdict(list)
    for pod in ctx.of(Pod):
        if ctx.pod_in_mesh(pod):
            pods[pod.namespace].append(pod.labels)
    everywhere = [labels for group in pods.values() for labels in group]
    for ap in ctx.of(AuthorizationPolicy):
        spec = ap.resource.spec
        selector = spec.selector.match_labels if spec.selector is not None else None
        if ap.namespace == ctx.root_namespace:
            if spec.selector is not None and not any(selects(selector, p) for p in everywhere):
                ctx.report(
                    ap,
                    msg.NO_MATCHING_WORKLOADS_FOUND,
                    selector_string(selector),
                    path=("spec", "selector"),
                )
        elif spec.selector is None:
            if not pods[ap.namespace]:
                ctx.report(ap, msg.NO_MATCHING_WORKLOADS_FOUND, "", path=("metadata", "name"))
        elif not any(selects(selector, p) for p in pods[ap.namespace]):
            sel = selector_string(selector)
            ctx.report(ap, msg.NO_MATCHING_WORKLOADS_FOUND, sel, path=("spec", "selector"))
        for i, rule in enumerate(spec.rules or []):
            for j, rule_from in enumerate(rule.from_ or []):
                source = rule_from.source
                if source is None:
                    continue
                for field in ("namespaces", "notNamespaces"):
                    values = source.namespaces if field == "namespaces" else source.not_namespaces
                    for k, pattern in enumerate(values or []):
                        if any(namespace_matches(ns, pattern) for ns in sorted(ctx.namespaces)):
                            continue
                        ctx.report(
                            ap,
                            msg.REFERENCED_RESOURCE_NOT_FOUND,
                            "namespace",
                            quote(pattern),
                            path=("spec", "rules", i, "from", j, "source", field, k),
                        )


def identity_uses(ap: AuthorizationPolicy) -> list[tuple[str, Path]]:
    """(what, path) of each peer-identity field or condition the policy's rules use."""
    uses: list[tuple[str, Path]] = []
    for i, rule in enumerate(ap.spec.rules or []):
        for j, rule_from in enumerate(rule.from_ or []):
            source = rule_from.source
            for attr, wire in IDENTITY_FIELDS:
                if source is not None and getattr(source, attr):
                    path = ("spec", "rules", i, "from", j, "source", wire)
                    uses.append((f"from.source.{wire}", path))
        for j, cond in enumerate(rule.when or []):
            if cond.key in IDENTITY_KEYS:
                uses.append((f"when {cond.key}", ("spec", "rules", i, "when", j, "key")))
    return uses


def _mutual(gateways: list[Entry[Gateway]]) -> bool:
    return any(
        server.tls is not None and server.tls.mode == "ISTIO_MUTUAL"
        for gw in gateways
        for server in gw.resource.spec.servers
    )


def peer_identity(ctx: AnalysisContext) -> None:
    """MG2002: peer identities matched on a gateway that no mTLS server feeds."""
    routers = [
        p
        for p in ctx.of(Pod)
        if (p.resource.metadata.annotations or {}).get(ROUTER_ANNOTATION) == "router"
    ]
    services = ctx.of(Service)
    gateways = ctx.of(Gateway)
    for ap in ctx.of(AuthorizationPolicy):
        uses = identity_uses(ap.resource)
        if not uses:
            continue
        reported: set[tuple[str, ...]] = set()
        for pod in routers:
            selecting = {
                s.name
                for s in services
                if s.namespace == pod.namespace
                and s.resource.spec.selector
                and selects(s.resource.spec.selector, pod.labels)
            }
            if not applies_to(
                ap.resource,
                namespace=pod.namespace,
                labels=pod.labels,
                root_namespace=ctx.root_namespace,
                router=True,
                services=selecting,
            ):
                continue
            serving = [gw for gw in gateways if selects(gw.resource.spec.selector, pod.labels)]
            names = tuple(sorted(gw.full_name for gw in serving))
            if not serving or _mutual(serving) or names in reported:
                continue  # replicas of one gateway share their Gateways: one message
            reported.add(names)
            what = ", ".join(dict.fromkeys(u[0] for u in uses))
            ctx.report(ap, msg.PEER_IDENTITY_ON_PLAINTEXT, what, ", ".join(names), path=uses[0][1])


def peer_identity_sidecars(ctx: AnalysisContext) -> None:
    """MG2004: peer identities matched on a sidecar whose PeerAuthentication is DISABLE."""
    from meshgate.api.kinds.istio_security import PeerAuthentication
    from meshgate.security import peerauth

    peer_auths = [e.resource for e in ctx.of(PeerAuthentication)]
    if not peer_auths:
        return
    sidecars = [
        p
        for p in ctx.of(Pod)
        if ctx.pod_in_mesh(p)
        and (p.resource.metadata.annotations or {}).get(ROUTER_ANNOTATION) != "router"
    ]
    for ap in ctx.of(AuthorizationPolicy):
        uses = identity_uses(ap.resource)
        if not uses:
            continue
        for pod in sorted(sidecars, key=lambda p: p.full_name):
            if not applies_to(
                ap.resource,
                namespace=pod.namespace,
                labels=pod.labels,
                root_namespace=ctx.root_namespace,
                router=False,
            ):
                continue
            mtls = peerauth.inbound_mtls(peer_auths, pod.namespace, pod.labels, ctx.root_namespace)
            if mtls.default != peerauth.DISABLE:
                continue
            what = ", ".join(dict.fromkeys(u[0] for u in uses))
            ctx.report(
                ap,
                msg.PEER_IDENTITY_WITH_MTLS_DISABLED,
                what,
                mtls.policies[0],
                pod.full_name,
                path=uses[0][1],
            )
            break
