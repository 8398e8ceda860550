"""Several services with one host name: which one a proxy sees, and how they merge.

Rules of this module (Istio's push context and sidecar scope: ``servicesExportedToNamespace``,
``selectServices`` with unified sidecar scoping, ``appendSidecarServices``):
- Order. A namespace lists the services it can see as: private ones (its own, exported to
  ``.`` or to itself), then ones other namespaces export to it by name, then public ones
  (``*``); each group oldest first (creationTimestamp, then resource name, then namespace).
- Sidecars pick one namespace per host: their own namespace when it has the host; else the
  first in that order, except that a Kubernetes Service beats a ServiceEntry.
- Routers (gateways) pick no namespace: the first service in order stands; a Kubernetes
  Service replaces a ServiceEntry; services from other namespaces are otherwise dropped.
- Merging, oldest first: a Kubernetes Service never merges with a ServiceEntry (it wins);
  an identical port list adds nothing; otherwise, when namespace, registry, resolution,
  labels, workload selector and exportTo all agree, ports with new numbers are appended (the
  oldest keeps a contested port number). A service that cannot merge is ignored. Other
  fields (location, addresses, SANs) are the oldest's.
- Endpoints of a merged service are the union, per port name, of the endpoints of every
  service with that host and namespace from the same registry (Istio keys endpoint shards by
  host and namespace, not by resource), without duplicate address:port pairs.
- Pure functions over immutable ``Service`` values.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from meshgate.model.services import Endpoint, Service, ServicePort

PRIVATE, EXPORTED, PUBLIC = 0, 1, 2


def creation_key(service: Service) -> tuple[str, str, str]:
    """Istio's SortServicesByCreationTime: oldest first, ties by name, then namespace."""
    return (service.created, service.name, service.namespace)


def visibility_rank(service: Service, namespace: str) -> int | None:
    """Where ``service`` falls in ``namespace``'s list; None when it is not visible there."""
    if "*" in service.export_to:
        return PUBLIC
    if namespace not in service.export_to:
        return None
    return PRIVATE if service.namespace == namespace else EXPORTED


def ordered_for(candidates: Iterable[Service], namespace: str) -> list[Service]:
    """The services of one host visible to ``namespace``, in Istio's order."""
    ranked = []
    for s in candidates:
        rank = visibility_rank(s, namespace)
        if rank is not None:
            ranked.append((rank, creation_key(s), s))
    ranked.sort(key=lambda r: (r[0], r[1]))
    return [s for _, _, s in ranked]


def sidecar_namespace(ordered: Sequence[Service], client_namespace: str) -> str:
    """The namespace a sidecar takes a host from (``ordered`` is non-empty)."""
    ns, kubernetes = ordered[0].namespace, ordered[0].is_kubernetes
    for s in ordered[1:]:
        if s.namespace == client_namespace:
            ns, kubernetes = s.namespace, s.is_kubernetes
        elif (
            s.is_kubernetes
            and not kubernetes
            and (s.namespace == client_namespace or ns != client_namespace)
        ):
            # A Kubernetes Service wins over a ServiceEntry, but never over the own namespace.
            ns, kubernetes = s.namespace, True
    return ns


def _port_keys(service: Service) -> tuple[tuple[str, int, str], ...]:
    return tuple((p.name, p.number, p.protocol) for p in service.ports)


def can_merge(a: Service, b: Service) -> bool:
    """Istio's canMergeServices (the host is already known to be the same)."""
    return (
        a.namespace == b.namespace
        and a.is_kubernetes == b.is_kubernetes
        and a.resolution == b.resolution
        and dict(a.labels) == dict(b.labels)
        and dict(a.selector) == dict(b.selector)
        and a.export_to == b.export_to
    )


def merge(ordered: Sequence[Service], peers: Sequence[Service] = ()) -> Service:
    """Fold ``ordered`` (non-empty, Istio's order) into the one service a proxy keeps.

    ``peers`` are every service of the same host (visible or not): their endpoints join the
    result's when they share its namespace and registry.
    """
    existing = ordered[0]
    merged = False
    for s in ordered[1:]:
        if s is existing:
            continue
        if existing.is_kubernetes and not s.is_kubernetes:
            continue
        if s.is_kubernetes and not existing.is_kubernetes:
            existing, merged = s, False  # a Kubernetes Service is never squatted on
            continue
        if _port_keys(existing) == _port_keys(s) or not can_merge(existing, s):
            continue
        extra = tuple(p for p in s.ports if existing.port(p.number) is None)
        if extra:
            existing = replace(existing, ports=existing.ports + extra)
            merged = True
    return _with_shared_endpoints(existing, peers or ordered, force=merged)


def _same_port(a: ServicePort, b: ServicePort) -> bool:
    return a.name == b.name if a.name or b.name else a.number == b.number


def _with_shared_endpoints(service: Service, peers: Sequence[Service], force: bool) -> Service:
    group = sorted(
        (
            p
            for p in peers
            if p.namespace == service.namespace and p.is_kubernetes == service.is_kubernetes
        ),
        key=creation_key,
    )
    if len(group) <= 1 and not force:
        return service
    endpoints: dict[int, tuple[Endpoint, ...]] = {}
    for port in service.ports:
        seen: set[tuple[str, int]] = set()
        union: list[Endpoint] = []
        for member in group:
            for q in member.ports:
                if not _same_port(q, port):
                    continue
                for ep in member.endpoints.get(q.number, ()):
                    if (ep.address, ep.port) not in seen:
                        seen.add((ep.address, ep.port))
                        union.append(ep)
        endpoints[port.number] = tuple(union)
    return replace(service, endpoints=endpoints)


def for_sidecar(candidates: Sequence[Service], client_namespace: str) -> Service | None:
    """The (merged) service a sidecar in ``client_namespace`` sees among ``candidates``,
    all of one host and already filtered by the Sidecar's imports."""
    ordered = ordered_for(candidates, client_namespace)
    if not ordered:
        return None
    ns = sidecar_namespace(ordered, client_namespace)
    return merge([s for s in ordered if s.namespace == ns], candidates)


def for_router(candidates: Sequence[Service], namespace: str) -> Service | None:
    """The (merged) service a router in ``namespace`` sees among ``candidates`` (one host)."""
    ordered = ordered_for(candidates, namespace)
    if not ordered:
        return None
    return merge(ordered, candidates)
