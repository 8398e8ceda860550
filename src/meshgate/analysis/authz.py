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
"""

from __future__ import annotations

from collections import defaultdict

from meshgate.analysis import messages as msg
from meshgate.analysis.context import AnalysisContext, selector_string, selects
from meshgate.analysis.messages import quote
from meshgate.api.kinds.istio_security import AuthorizationPolicy
from meshgate.api.kinds.kubernetes import Pod


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
