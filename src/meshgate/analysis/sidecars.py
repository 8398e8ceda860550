"""Sidecar analyzers: workload selectors that select nothing, or the same pods twice.

Rules of this module (Istio's sidecar analyzers, same codes and wording):
- A Sidecar with a non-empty workload selector must select a pod in its own namespace
  (IST0101 ``selector``).
- Two Sidecars selecting the same pod conflict (IST0110, on each, per pod).
- Two Sidecars of one namespace without any workload selector conflict (IST0111).
"""

from __future__ import annotations

from collections import defaultdict

from meshgate.analysis import messages as msg
from meshgate.analysis.context import AnalysisContext, Entry, selector_string, selects
from meshgate.analysis.messages import quote
from meshgate.api.kinds.istio_networking import Sidecar
from meshgate.api.kinds.kubernetes import Pod


def _names(sidecars: list[Entry[Sidecar]]) -> str:
    return "[" + " ".join(s.name for s in sidecars) + "]"


def selectors(ctx: AnalysisContext) -> None:
    """IST0101 (selects no pod) and IST0110 (several Sidecars select one pod)."""
    by_pod: dict[tuple[str, str], list[Entry[Sidecar]]] = defaultdict(list)
    pods = ctx.of(Pod)
    for sc in ctx.of(Sidecar):
        ws = sc.resource.spec.workload_selector
        labels = ws.labels if ws is not None else None
        if not labels:
            continue
        found = False
        for pod in pods:
            if pod.namespace == sc.namespace and selects(labels, pod.labels):
                found = True
                by_pod[(pod.namespace, pod.name)].append(sc)
        if not found:
            first = sorted(labels)[0]
            ctx.report(
                sc,
                msg.REFERENCED_RESOURCE_NOT_FOUND,
                "selector",
                quote(selector_string(labels)),
                path=("spec", "workloadSelector", "labels", first),
            )
    for (ns, pod_name), listed in sorted(by_pod.items()):
        if len(listed) < 2:
            continue
        for sc in listed:
            ctx.report(
                sc,
                msg.CONFLICTING_SIDECAR_SELECTORS,
                _names(listed),
                quote(ns),
                quote(pod_name),
                path=("metadata", "name"),
            )


def default_selectors(ctx: AnalysisContext) -> None:
    """IST0111: more than one selector-less Sidecar in a namespace."""
    by_ns: dict[str, list[Entry[Sidecar]]] = defaultdict(list)
    for sc in ctx.of(Sidecar):
        if sc.resource.spec.workload_selector is None:
            by_ns[sc.namespace].append(sc)
    for ns, listed in sorted(by_ns.items()):
        if len(listed) < 2:
            continue
        for sc in listed:
            ctx.report(sc, msg.MULTIPLE_SIDECARS_WITHOUT_SELECTORS, _names(listed), quote(ns))
