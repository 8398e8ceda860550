"""Sidecar analyzer: workload selectors that select nothing, or the same pods twice.

Rules of this module (Istio's ``sidecar.SelectorAnalyzer``, same codes and wording):
- A Sidecar with a non-empty workload selector must select a pod in its own namespace
  (IST0101 ``selector``).
- Two Sidecars selecting the same pod conflict (IST0110, on each, per pod).
- Two Sidecars of one namespace without workload selector labels conflict (IST0111).
- Istio ambient mode has no sidecars: a Sidecar selecting an ambient pod (annotated
  ``ambient.istio.io/redirection: enabled``), or a selector-less one in an ambient
  namespace, is IST0167 IneffectivePolicy (once per Sidecar), not a conflict.
"""

from __future__ import annotations

from collections import defaultdict

from meshgate.analysis import messages as msg
from meshgate.analysis.context import AnalysisContext, Entry, selector_string, selects
from meshgate.analysis.messages import quote
from meshgate.api.kinds.istio_networking import Sidecar
from meshgate.api.kinds.kubernetes import Pod

AMBIENT_POD = "selected workload is in ambient mode, the policy has no impact"
AMBIENT_NAMESPACE = "namespace is in ambient mode, the policy has no impact"


def _names(sidecars: list[Entry[Sidecar]]) -> str:
    return "[" + " ".join(s.name for s in sidecars) + "]"


def _labels(sc: Entry[Sidecar]) -> dict[str, str]:
    ws = sc.resource.spec.workload_selector
    return dict(ws.labels or {}) if ws is not None else {}


def selectors(ctx: AnalysisContext) -> None:
    """IST0101, IST0110, IST0111 and, for ambient workloads, IST0167."""
    by_pod: dict[tuple[str, str], list[Entry[Sidecar]]] = defaultdict(list)
    pods = {(p.namespace, p.name): p for p in ctx.of(Pod)}
    by_ns: dict[str, list[Entry[Sidecar]]] = defaultdict(list)
    for sc in ctx.of(Sidecar):
        labels = _labels(sc)
        if not labels:
            by_ns[sc.namespace].append(sc)
            continue
        found = False
        for key, pod in pods.items():
            if pod.namespace == sc.namespace and selects(labels, pod.labels):
                found = True
                by_pod[key].append(sc)
        if not found:
            first = sorted(labels)[0]
            ctx.report(
                sc,
                msg.REFERENCED_RESOURCE_NOT_FOUND,
                "selector",
                quote(selector_string(labels)),
                path=("spec", "workloadSelector", "labels", first),
            )
    ineffective: set[str] = set()
    for (ns, pod_name), listed in sorted(by_pod.items()):
        ambient = ctx.pod_in_ambient(pods[(ns, pod_name)])
        if len(listed) < 2 and not ambient:
            continue
        for sc in listed:
            if ambient:
                if sc.full_name not in ineffective:
                    ineffective.add(sc.full_name)
                    ctx.report(sc, msg.INEFFECTIVE_POLICY, AMBIENT_POD)
                continue
            ctx.report(
                sc,
                msg.CONFLICTING_SIDECAR_SELECTORS,
                _names(listed),
                quote(ns),
                quote(pod_name),
                path=("metadata", "name"),
            )
    for ns, listed in sorted(by_ns.items()):
        if ctx.namespace_in_ambient(ns):
            for sc in listed:
                if sc.full_name not in ineffective:
                    ineffective.add(sc.full_name)
                    ctx.report(sc, msg.INEFFECTIVE_POLICY, AMBIENT_NAMESPACE)
            continue
        if len(listed) < 2:
            continue
        for sc in listed:
            ctx.report(sc, msg.MULTIPLE_SIDECARS_WITHOUT_SELECTORS, _names(listed), quote(ns))
