"""Admission defaults the server adds before objects reach the store, as Kubernetes' API
server does at create time.

Rules:
- A Service without ``spec.clusterIP`` keeps the one it already has in the store, or gets
  one allocated (10.96.0.0/16, from a hash of ``ns/name``, past addresses in use), so
  ``get svc`` shows the address DNS answers with, and re-applying the same manifest (which
  has no clusterIP) changes nothing. ``None`` (headless) and ``ExternalName`` get none.
- An ownerReference without a uid gets the uid of the owner it names (kind and name) in
  the object's namespace, or cluster-scoped; with no such owner the request is refused
  (Kubernetes refuses every uid-less reference; ownership here is by uid as there, and a
  dependent whose owner is unknown would only be garbage-collected).
- Pure over its inputs: the caller passes what the store holds; nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from meshgate.api.meta import group_of
from meshgate.model.snapshot import allocate_cluster_ips
from meshgate.server import workloads as wl

Obj = dict[str, Any]


def _is_service(obj: Obj) -> bool:
    return obj.get("kind") == "Service" and str(obj.get("apiVersion", "")) == "v1"


def _key(obj: Obj) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or "default"), str(meta.get("name") or "")


def _needs_ip(obj: Obj) -> bool:
    spec = obj.get("spec") or {}
    return not spec.get("clusterIP") and spec.get("type") != "ExternalName"


def default_cluster_ips(objects: list[Obj], stored: Iterable[Obj]) -> list[Obj]:
    """``objects`` with Services' cluster IPs filled in (new dicts where changed)."""
    if not any(_is_service(o) and _needs_ip(o) for o in objects):
        return objects
    incoming = {_key(o) for o in objects if _is_service(o)}
    current = {_key(s): s for s in stored if _is_service(s)}
    kept = {k: str((s.get("spec") or {}).get("clusterIP") or "") for k, s in current.items()}
    taken = {ip for k, ip in kept.items() if ip and k not in incoming}
    # An ExternalName Service has no clusterIP at all (``.get``: it must not fail apply).
    taken |= {
        str((o.get("spec") or {}).get("clusterIP") or "")
        for o in objects
        if _is_service(o) and not _needs_ip(o)
    } - {""}
    pending = sorted(
        k for k in (_key(o) for o in objects if _is_service(o) and _needs_ip(o)) if not kept.get(k)
    )
    # Addresses in use stand in as explicit Services, so the model's allocator (the same
    # hash and probing the snapshot uses) steps around them.
    placeholders = [
        {"metadata": {"namespace": "", "name": f"in-use-{i}"}, "spec": {"clusterIP": ip}}
        for i, ip in enumerate(sorted(taken - {"None"}))
    ]
    targets = [{"metadata": {"namespace": ns, "name": n}, "spec": {}} for ns, n in pending]
    fresh = allocate_cluster_ips([*placeholders, *targets])
    out: list[Obj] = []
    for obj in objects:
        if not (_is_service(obj) and _needs_ip(obj)):
            out.append(obj)
            continue
        key = _key(obj)
        ip = kept.get(key) or fresh[key]
        out.append({**obj, "spec": {**(obj.get("spec") or {}), "clusterIP": ip}})
    return out


def owner_kinds_missing_uids(objects: list[Obj]) -> set[tuple[str, str]]:
    """(group, kind) of every owner that an ownerReference without a uid names."""
    return {
        (group_of(str(ref.get("apiVersion", ""))), str(ref.get("kind", "")))
        for o in objects
        for ref in (o.get("metadata") or {}).get("ownerReferences") or []
        if isinstance(ref, dict) and not ref.get("uid")
    }


def default_owner_uids(
    objects: list[Obj], stored: Callable[[str, str], Iterable[Obj]]
) -> list[Obj]:
    """``objects`` with uid-less ownerReferences given their owner's uid; ``stored(group,
    kind)`` lists the stored objects of a kind. ValueError naming each reference whose
    owner does not exist."""
    kinds = owner_kinds_missing_uids(objects)
    if not kinds:
        return objects
    owners = [o for group, kind in sorted(kinds) for o in stored(group, kind)]
    fill = wl.fill_owner_uids(objects, owners)
    if fill.unresolved:
        raise ValueError(
            "; ".join(fill.unresolved)
            + " (an ownerReference needs its owner's uid: apply the owner first, or give it)"
        )
    filled = {wl.key_of(o): o for o in fill.filled}
    return [filled.get(wl.key_of(o), o) for o in objects]
