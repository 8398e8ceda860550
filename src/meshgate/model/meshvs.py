"""The mesh VirtualServices a sidecar applies to one host, in Istio's order.

Rules of this module:
- Visibility: a VirtualService's ``exportTo`` as written, else MeshConfig's
  ``defaultVirtualServiceExportTo``, else every namespace (``.`` is its own namespace).
- Order (Istio's ``PushContext.initVirtualServices`` + ``VirtualServicesForGateway``): for
  a client namespace, first those private to it (``exportTo`` ``.`` or the
  VirtualService's own namespace, when that is the client's), then those exported to it by
  name, then public ones (``*``); within each, oldest first (``creationTimestamp``, then
  name, then namespace).
- ``for_l4``: every visible VirtualService one of whose hosts is the host or a wildcard
  covering it, in that order. Istio builds a TLS/TCP port's filter chains from all of them
  (``buildSidecarOutboundTCPListenerOpts`` over ``getConfigsForHost``): ``tls`` matches
  in order, the first of equal SNI sets winning; ``tcp``, the first applicable route.
- ``for_http``: exact-host VirtualServices in that order, then wildcard ones, the most
  specific first. Istio gives the host's virtual host the routes of ONE VirtualService:
  the first of these with HTTP routes for the port (one without builds no virtual host,
  ``buildSidecarVirtualHostsForVirtualService``; later ones for the same domain are
  dropped as duplicates), so an ``http``-only and a ``tls``-only VirtualService for one
  host do not hide each other. Routes of two VirtualServices are never merged for a
  sidecar (Istio merges only delegates, and routes on gateways).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from meshgate.model import hosts
from meshgate.model.fields import get, get_list, get_str

PRIVATE, EXPORTED, PUBLIC = 0, 1, 2


def _meta(vs: Any) -> Any:
    return get(vs, "metadata")


def _ns(vs: Any) -> str:
    return get_str(_meta(vs), "namespace") or "default"


def _export_to(vs: Any, default: tuple[str, ...]) -> list[str]:
    return [str(e) for e in get_list(get(vs, "spec"), "export_to")] or list(default)


def tier(vs: Any, namespace: str, default: tuple[str, ...] = ()) -> int | None:
    """Which of Istio's lists shows ``vs`` to ``namespace`` (None: not visible there)."""
    export = _export_to(vs, default)
    if not export or "*" in export:
        return PUBLIC
    own = _ns(vs)
    if namespace == own and ("." in export or own in export):
        return PRIVATE
    return EXPORTED if namespace in export else None


def visible(vs: Any, namespace: str, default: tuple[str, ...] = ()) -> bool:
    return tier(vs, namespace, default) is not None


def _age_key(vs: Any) -> tuple[str, str, str]:
    meta = _meta(vs)
    return (get_str(meta, "creation_timestamp"), get_str(meta, "name"), _ns(vs))


def _ordered(
    found: Iterable[Any], namespace: str, default: tuple[str, ...]
) -> list[tuple[tuple[int, str, str, str], Any]]:
    keyed = []
    for vs in found:
        t = tier(vs, namespace, default)
        if t is not None:
            keyed.append(((t, *_age_key(vs)), vs))
    return keyed


def for_l4(
    exact: Iterable[Any],
    wildcards: Iterable[tuple[str, Any]],
    hostname: str,
    namespace: str,
    default: tuple[str, ...] = (),
) -> tuple[Any, ...]:
    """Every visible VirtualService for ``hostname``, in Istio's order."""
    found: dict[int, Any] = {id(vs): vs for vs in exact}
    for pattern, vs in wildcards:
        if hosts.subset_of(hostname, pattern):
            found.setdefault(id(vs), vs)
    keyed = _ordered(found.values(), namespace, default)
    return tuple(vs for _, vs in sorted(keyed, key=lambda kv: kv[0]))


def for_http(
    exact: Iterable[Any],
    wildcards: Iterable[tuple[str, Any]],
    hostname: str,
    namespace: str,
    default: tuple[str, ...] = (),
) -> tuple[Any, ...]:
    """Candidates for the host's HTTP routes: exact hosts first, then the most specific
    wildcards, each in Istio's order; the first with routes for the port wins."""
    first = [vs for _, vs in sorted(_ordered(exact, namespace, default), key=lambda kv: kv[0])]
    seen = {id(vs) for vs in first}
    wild: list[tuple[tuple[int, int, str], tuple[int, str, str, str], Any]] = []
    for pattern, vs in wildcards:
        if id(vs) in seen or not hosts.subset_of(hostname, pattern):
            continue
        for key, v in _ordered((vs,), namespace, default):
            wild.append((hosts.specificity_key(pattern), key, v))
    wild.sort(key=lambda t: (t[0], t[1]))
    out = list(first)
    for _, _, vs in wild:
        if id(vs) not in seen:
            seen.add(id(vs))
            out.append(vs)
    return tuple(out)
