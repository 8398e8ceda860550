"""Deprecations: fields Istio ignores or replaced, and deprecated Istio annotations.

Rules of this module (Istio's deprecation and annotation analyzers, same codes and wording):
- IST0002 for a VirtualService fault delay given as ``percent`` (use ``percentage``) and for
  a Sidecar ``outboundTrafficPolicy.egressProxy`` (ignored).
- IST0135 for a deprecated annotation on a Pod, Deployment (its pod template too), Service
  or Namespace a user wrote; objects a controller made (owner references) are not judged,
  since meshgate itself marks its gateway pods ``sidecar.istio.io/inject: "false"``. The
  inject annotation is not reported when the ``sidecar.istio.io/inject`` label is there too.
"""

from __future__ import annotations

from typing import Any

from meshgate.analysis import messages as msg
from meshgate.analysis.context import INJECT, AnalysisContext, Entry
from meshgate.analysis.messages import quote
from meshgate.api.kinds.istio_networking import Sidecar, VirtualService
from meshgate.api.kinds.kubernetes import Deployment, Namespace, Pod, Service
from meshgate.api.yamlsource import Path

# annotation -> the extra words after "has been deprecated"
DEPRECATED_ANNOTATIONS = {
    INJECT: f" in favor of the {quote(INJECT)} label",
    "policy.istio.io/check": "",
    "policy.istio.io/checkBaseRetryWaitTime": "",
    "policy.istio.io/checkMaxRetryWaitTime": "",
    "policy.istio.io/checkRetries": "",
    "policy.istio.io/lang": "",
}


def deprecated_fields(ctx: AnalysisContext) -> None:
    """IST0002 for deprecated fields Istio still reads (or ignores)."""
    for vs in ctx.of(VirtualService):
        for i, route in enumerate(vs.resource.spec.http or []):
            delay = route.fault.delay if route.fault else None
            if delay is not None and delay.percent:
                ctx.report(
                    vs,
                    msg.DEPRECATED,
                    "HTTPRoute.fault.delay.percent is deprecated; use "
                    "HTTPRoute.fault.delay.percentage",
                    path=("spec", "http", i, "fault", "delay", "percent"),
                )
    for sc in ctx.of(Sidecar):
        policy = sc.resource.spec.outbound_traffic_policy
        if policy is not None and policy.egress_proxy is not None:
            ctx.report(
                sc,
                msg.DEPRECATED,
                "OutboundTrafficPolicy.EgressProxy ignored",
                path=("spec", "outboundTrafficPolicy", "egressProxy"),
            )


def deprecated_annotations(ctx: AnalysisContext) -> None:
    """IST0135 for deprecated annotations on objects users wrote."""
    entries: list[Entry[Any]] = [
        *ctx.of(Pod),
        *ctx.of(Deployment),
        *ctx.of(Service),
        *ctx.of(Namespace),
    ]
    for entry in entries:
        if entry.owned:
            continue
        own = entry.resource.metadata.annotations or {}
        found: list[tuple[Path, dict[str, str], dict[str, str]]] = [
            (("metadata", "annotations"), own, entry.labels)
        ]
        if isinstance(entry.resource, Deployment):
            template = entry.resource.spec.template
            meta = template.metadata
            found.append(
                (
                    ("spec", "template", "metadata", "annotations"),
                    (meta.annotations if meta else None) or {},
                    template.labels,
                )
            )
        for base, notes, labels in found:
            for name in sorted(notes):
                if name not in DEPRECATED_ANNOTATIONS:
                    continue
                if name == INJECT and INJECT in labels:
                    continue
                ctx.report(
                    entry,
                    msg.DEPRECATED_ANNOTATION,
                    quote(name),
                    DEPRECATED_ANNOTATIONS[name],
                    path=(*base, name),
                )
