"""The ``Egress:`` section of ``describe pod``: how this pod reaches external hosts.

Rules:
- Pure: the pod and the mesh's objects (canonical wire dicts) in, lines out.
- It says which rule decides, in this order: the pod is a gateway; a NetworkPolicy isolates
  its egress; MeshConfig ``egressEnforcement: GATEWAY_ONLY`` lets it out only through a
  gateway; otherwise (``OFF``) it reaches external hosts directly, and when some
  VirtualService routes to an egress gateway the section says plainly that this pod can
  go around that gateway, and the one line that closes it.
- Then, for a pod with a sidecar, its outbound mode and each external host it can reach,
  on which port and through which gateway (``describe_hosts``).
"""

from __future__ import annotations

from typing import Any

from meshgate.cli.describe_hosts import effective_egress_lines
from meshgate.runtime import netpolicy
from meshgate.server import nodefilter
from meshgate.server import workloads as wl

Obj = dict[str, Any]


def _gateway_services(objs: list[Obj]) -> set[str]:
    routers = [o for o in objs if o.get("kind") == "Pod" and wl.is_router(o)]
    out = set()
    for svc in (o for o in objs if o.get("kind") == "Service"):
        ns = wl.namespace_of(svc)
        selector = (svc.get("spec") or {}).get("selector") or {}
        for pod in routers:
            labels = (pod.get("metadata") or {}).get("labels") or {}
            if selector and wl.namespace_of(pod) == ns and selector.items() <= labels.items():
                out.add(f"{svc['metadata']['name']}.{ns}.svc.cluster.local")
    return out


def _routes_to_gateways(objs: list[Obj]) -> list[tuple[str, str]]:
    """(VirtualService ns/name, gateway host) for every VirtualService routing to one."""
    gateways = _gateway_services(objs)
    out = []
    for vs in (o for o in objs if o.get("kind") == "VirtualService"):
        ns = wl.namespace_of(vs)
        spec = vs.get("spec") or {}
        for section in ("http", "tcp", "tls"):
            for route in spec.get(section) or []:
                for rd in route.get("route") or []:
                    host = str((rd.get("destination") or {}).get("host", ""))
                    full = host if "." in host else f"{host}.{ns}.svc.cluster.local"
                    if full in gateways:
                        out.append((f"{ns}/{vs['metadata']['name']}", full))
    return sorted(set(out))


def egress_lines(pod: Obj, objs: list[Obj]) -> list[str]:
    # A pod still without an IP is judged all the same: selection is by labels.
    placed = {**pod, "status": {**(pod.get("status") or {}), "podIP": "0.0.0.0"}}
    inputs = nodefilter.inputs([o for o in objs if o.get("kind") != "Pod"] + [placed])
    info = inputs.pods[0] if inputs.pods else None
    mode = "GATEWAY_ONLY" if inputs.gateway_only else "OFF"
    policies = []
    if info is not None:
        policies = [
            f"{p.namespace}/{p.name}"
            for p in inputs.policies
            if netpolicy.selects(p, info, "Egress")
        ]
    if nodefilter.is_gateway(pod):
        exit_line = "this pod is a gateway: it may reach external hosts"
    elif policies:
        exit_line = f"as its egress NetworkPolicies allow: {', '.join(policies)}"
    elif mode == "GATEWAY_ONLY":
        exit_line = (
            "only through an egress gateway: the node refuses this pod's own connections to "
            "external hosts"
        )
    else:
        exit_line = "direct: this pod can reach external hosts without any gateway"
    lines = ["Egress:", f"  Enforcement:  {mode} (MeshConfig egressEnforcement)"]
    lines.append(f"  Exit:         {exit_line}")
    lines += effective_egress_lines(pod, objs)
    routes = _routes_to_gateways(objs)
    if mode == "OFF" and not policies and not nodefilter.is_gateway(pod) and routes:
        vs, host = routes[0]
        lines += [
            f"  Warning:      workloads can go around the egress gateway {host}",
            f"                (VirtualService {vs} routes to it): this pod reaches external",
            "                hosts directly when it has no sidecar or its sidecar passes",
            "                traffic through. Set MeshConfig egressEnforcement: GATEWAY_ONLY",
            "                to make the gateway the only exit.",
        ]
    return lines
