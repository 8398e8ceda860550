"""VirtualService analyzers: destinations, subsets, gateways and mesh-wide host conflicts.

Rules of this module (Istio's virtualservice analyzers, same codes and wording):
- Every route destination (tcp, tls, http, in that order) and every mirror must name a
  service visible from the VirtualService's namespace (IST0101 ``host`` / ``mirror host``);
  with a port, the service must have it (IST0101 ``host:port``); without one, a service with
  several ports is ambiguous (IST0112).
- A destination with a subset needs a DestinationRule for that host defining that subset
  (IST0101 ``host+subset in destinationrule``; ``mirror+subset`` for mirrors).
- Every gateway named (except ``mesh``) must exist (IST0101 ``gateway``; ``name`` is in the
  VirtualService's namespace, ``ns/name`` elsewhere) and publish at least one of the
  VirtualService's hosts (IST0132).
- VirtualServices bound to the mesh gateway that define the same host for the same
  namespaces (``exportTo``) conflict: IST0109 on each, once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from meshgate.analysis import messages as msg
from meshgate.analysis.context import AnalysisContext, Entry
from meshgate.analysis.messages import quote
from meshgate.analysis.services import ALL, LOCAL, ServiceIndex, ServiceView, fqdn
from meshgate.api.kinds.istio_networking import (
    Destination,
    DestinationRule,
    Gateway,
    VirtualService,
)
from meshgate.api.yamlsource import Path
from meshgate.model import hosts

MESH = "mesh"


@dataclass(frozen=True)
class RouteDestination:
    kind: str  # "http" | "tcp" | "tls" | "mirror"
    destination: Destination
    path: Path

    @property
    def is_mirror(self) -> bool:
        return self.kind == "mirror"


def route_destinations(vs: VirtualService) -> Iterator[RouteDestination]:
    spec = vs.spec
    sections: tuple[tuple[str, list[Any]], ...] = (
        ("tcp", list(spec.tcp or [])),
        ("tls", list(spec.tls or [])),
        ("http", list(spec.http or [])),
    )
    for kind, routes in sections:
        for i, route in enumerate(routes):
            for j, rd in enumerate(route.route or []):
                yield RouteDestination(
                    kind, rd.destination, ("spec", kind, i, "route", j, "destination")
                )


def mirror_destinations(vs: VirtualService) -> Iterator[RouteDestination]:
    for i, route in enumerate(vs.spec.http or []):
        if route.mirror is not None:
            yield RouteDestination("mirror", route.mirror, ("spec", "http", i, "mirror"))
        for j, mirror in enumerate(route.mirrors or []):
            path = ("spec", "http", i, "mirrors", j, "destination")
            yield RouteDestination("mirror", mirror.destination, path)


def destination_hosts(ctx: AnalysisContext) -> None:
    """IST0101 host / mirror host / host:port, and IST0112 port selector required."""
    services = ServiceIndex(ctx)
    for vs in ctx.of(VirtualService):
        export_to = vs.resource.spec.export_to
        for rd in [*route_destinations(vs.resource), *mirror_destinations(vs.resource)]:
            host = rd.destination.host
            found = services.lookup(vs.namespace, host, export_to)
            path = (*rd.path, "host")
            if found is None:
                what = "mirror host" if rd.is_mirror else "host"
                ctx.report(vs, msg.REFERENCED_RESOURCE_NOT_FOUND, what, quote(host), path=path)
                continue
            _check_port(ctx, vs, rd, found, path)


def _check_port(
    ctx: AnalysisContext,
    vs: Entry[VirtualService],
    rd: RouteDestination,
    service: ServiceView,
    path: Path,
) -> None:
    selector = rd.destination.port
    number = selector.number if selector is not None else None
    if not number:
        if len(service.ports) > 1:
            ports = "[" + " ".join(str(p) for p in service.ports) + "]"
            ctx.report(
                vs,
                msg.VS_DESTINATION_PORT_SELECTOR_REQUIRED,
                quote(rd.destination.host),
                ports,
                path=path,
            )
        return
    if number not in service.ports:
        ref = f"{rd.destination.host}:{number}"
        ctx.report(vs, msg.REFERENCED_RESOURCE_NOT_FOUND, "host:port", quote(ref), path=path)


def destination_subsets(ctx: AnalysisContext) -> None:
    """IST0101 for a subset no DestinationRule of that host defines."""
    known: set[tuple[str, str]] = set()
    for dr in ctx.of(DestinationRule):
        host = fqdn(dr.resource.spec.host, dr.namespace)
        for defined in dr.resource.spec.subsets or []:
            known.add((host, defined.name))
    for vs in ctx.of(VirtualService):
        for rd in [*route_destinations(vs.resource), *mirror_destinations(vs.resource)]:
            subset = rd.destination.subset
            if not subset:
                continue
            if (fqdn(rd.destination.host, vs.namespace), subset) in known:
                continue
            what = f"{'mirror' if rd.is_mirror else 'host'}+subset in destinationrule"
            ref = f"{rd.destination.host}+{subset}"
            ctx.report(
                vs, msg.REFERENCED_RESOURCE_NOT_FOUND, what, quote(ref), path=(*rd.path, "host")
            )


def gateways(ctx: AnalysisContext) -> None:
    """IST0101 for a missing gateway; IST0132 when no VirtualService host is on it."""
    for vs in ctx.of(VirtualService):
        vs_hosts = vs.resource.spec.hosts or []
        for i, name in enumerate(vs.resource.spec.gateways or []):
            if name == MESH:
                continue
            ns, sep, short = name.partition("/")
            ns, short = (ns, short) if sep else (vs.namespace, name)
            path = ("spec", "gateways", i)
            gw = ctx.find(Gateway, ns, short)
            if gw is None:
                ctx.report(vs, msg.REFERENCED_RESOURCE_NOT_FOUND, "gateway", quote(name), path=path)
            if not _host_in_gateway(gw, vs_hosts, vs.namespace):
                listed = "[" + " ".join(vs_hosts) + "]"
                ctx.report(
                    vs,
                    msg.VS_HOST_NOT_FOUND_IN_GATEWAY,
                    listed,
                    vs.full_name,
                    f"{ns}/{short}",
                    path=path,
                )


def _host_in_gateway(gw: Entry[Gateway] | None, vs_hosts: list[str], vs_ns: str) -> bool:
    if gw is None:
        return False
    names: list[str] = []
    for server in gw.resource.spec.servers:
        for raw in server.hosts or []:
            ns, sep, host = raw.partition("/")
            if not sep:
                names.append(raw)
                continue
            if ns == LOCAL:
                ns = gw.namespace
            if ns in (ALL, vs_ns):
                names.append(host)
    return any(
        hosts.matches(hosts.normalize(g), hosts.normalize(v)) for g in names for v in vs_hosts
    )


def conflicting_mesh_hosts(ctx: AnalysisContext) -> None:
    """IST0109: two mesh-bound VirtualServices define the same host for the same clients."""
    by_host: dict[tuple[str, str], list[Entry[VirtualService]]] = defaultdict(list)
    for vs in ctx.of(VirtualService):
        spec = vs.resource.spec
        if spec.gateways and MESH not in spec.gateways:
            continue
        export_to = spec.export_to or []
        if not export_to or ALL in export_to:
            scopes = [ALL]
        else:
            scopes = sorted({vs.namespace if e == LOCAL else e for e in export_to})
        for scope in scopes:
            for h in spec.hosts or []:
                by_host[(scope, fqdn(h, vs.namespace))].append(vs)
    reported: set[str] = set()
    for (scope, host), listed in sorted(by_host.items()):
        group = list(listed)
        if scope != ALL:
            for (other_scope, other_host), others in sorted(by_host.items()):
                if other_scope == ALL and hosts.matches(host, other_host):
                    group.extend(others)
        if len(group) < 2:
            continue
        names = ",".join(e.full_name for e in group)
        for vs in group:
            if vs.full_name in reported:
                continue
            reported.add(vs.full_name)
            ctx.report(
                vs,
                msg.CONFLICTING_MESH_GATEWAY_VS_HOSTS,
                names,
                f"{scope}/{host}",
                path=("metadata", "name"),
            )
