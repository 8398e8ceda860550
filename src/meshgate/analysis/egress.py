"""Egress analyzers: an egress gateway that workloads can go around.

Rules of this module:
- MG2003 (Info) on each VirtualService that routes (http, tcp or tls) to the Service of a
  gateway workload (a Kubernetes Service in front of router pods, as the IstioGateway
  controller makes one) while MeshConfig ``egressEnforcement`` is ``OFF``: the gateway is a
  route, not an exit, and a workload without a sidecar (or any traffic its sidecar passes
  through) reaches the world directly. Once per VirtualService, at its first such route.
- Nothing is said with ``GATEWAY_ONLY``, nor when no VirtualService uses a gateway.
"""

from __future__ import annotations

from meshgate.analysis import messages as msg
from meshgate.analysis.context import AnalysisContext, selects
from meshgate.analysis.services import fqdn
from meshgate.analysis.virtualservices import route_destinations
from meshgate.api.kinds.istio_networking import VirtualService
from meshgate.api.kinds.kubernetes import Pod, Service

ROUTER_ANNOTATION = "meshgate.io/proxy-type"


def gateway_services(ctx: AnalysisContext) -> set[str]:
    """FQDNs of the Services that select gateway (router) pods."""
    routers = [
        p
        for p in ctx.of(Pod)
        if (p.resource.metadata.annotations or {}).get(ROUTER_ANNOTATION) == "router"
    ]
    out: set[str] = set()
    for svc in ctx.of(Service):
        selector = svc.resource.spec.selector
        if selector and any(
            r.namespace == svc.namespace and selects(selector, r.labels) for r in routers
        ):
            out.add(f"{svc.name}.{svc.namespace}.svc.cluster.local")
    return out


def bypassable_gateway(ctx: AnalysisContext) -> None:
    """MG2003: a VirtualService sends traffic to an egress gateway nothing enforces."""
    if ctx.mesh.effective_egress_enforcement != "OFF":
        return
    gateways = gateway_services(ctx)
    if not gateways:
        return
    for vs in ctx.of(VirtualService):
        for rd in route_destinations(vs.resource):
            host = fqdn(rd.destination.host, vs.namespace)
            if host in gateways:
                ctx.report(vs, msg.EGRESS_GATEWAY_BYPASSABLE, host, path=rd.path)
                break
