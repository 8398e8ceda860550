"""The ASMEgressTrafficPolicy controller: the compiler's output written to the store.

Rules:
- Each pass compiles every policy (``controllers.asmegress``) against the store's objects,
  applies the resources of those that compiled (store.apply: unchanged ones are no write),
  and writes each policy's ``status`` (an equal status is no write either).
- A policy that failed or conflicts keeps what it made before (the last good resources,
  as Istio keeps serving the last good config); only its status changes.
- Objects labelled as made by a policy are deleted when that policy is gone (no policy
  of that namespace, name and uid: ownerReferences cover the policy's own namespace,
  the ``meshgate.io/owner-uid`` annotation the gateway's), or when a policy that compiled
  no longer makes them. Nothing unlabelled is ever deleted or overwritten.
- ``gateway_service_ports`` adds the gateway ports a policy needs to the Service the
  IstioGateway controller makes, so the sidecars' gateway cluster has them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from meshgate.api.meta import ResourceKey
from meshgate.controllers import asmegress as compiler
from meshgate.store.base import ConfigStore

log = logging.getLogger("meshgate.asmegress")

Obj = dict[str, Any]


def _group(api: str) -> str:
    return api.rsplit("/", 1)[0] if "/" in api else ""


def _key(obj: Obj) -> ResourceKey:
    meta = obj.get("metadata") or {}
    return ResourceKey(
        _group(str(obj.get("apiVersion", ""))),
        str(obj.get("kind", "")),
        str(meta.get("namespace") or ""),
        str(meta.get("name") or ""),
    )


def _owner_uid(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == compiler.KIND:
            return str(ref.get("uid") or "")
    return str((meta.get("annotations") or {}).get(compiler.OWNER_UID) or "")


def sync(
    store: ConfigStore, objects: list[Obj], canonical: Callable[[list[Obj]], list[Obj]]
) -> None:
    """One pass of the controller over ``objects`` (the store's, listed this pass)."""
    compiled = compiler.compile_all(objects)
    policies = {
        (
            str((o.get("metadata") or {}).get("namespace") or ""),
            str((o.get("metadata") or {}).get("name") or ""),
        ): o
        for o in objects
        if o.get("kind") == compiler.KIND
    }
    desired: list[Obj] = []
    keep: set[ResourceKey] = set()
    for _, result in sorted(compiled.items()):
        if result.status.get("status") == compiler.APPLIED:
            desired.extend(result.objects)
            keep.update(_key(o) for o in result.objects)
    stale: list[ResourceKey] = []
    for obj in objects:
        if not compiler.generated(obj):
            continue
        labels = (obj.get("metadata") or {}).get("labels") or {}
        owner = (labels.get(compiler.LABEL_POLICY_NS, ""), labels.get(compiler.LABEL_POLICY, ""))
        policy = policies.get(owner)
        alive = policy is not None and _owner_uid(obj) == str(
            (policy.get("metadata") or {}).get("uid") or ""
        )
        applied = owner in compiled and compiled[owner].status.get("status") == compiler.APPLIED
        if not alive or (applied and _key(obj) not in keep):
            stale.append(_key(obj))
    if stale:
        for gone in stale:
            log.info("%s: no longer made by its ASMEgressTrafficPolicy; deleting it", gone)
        store.delete(sorted(stale), missing_ok=True)
    if desired:
        for change in store.apply(canonical(desired)):
            if change.action != "unchanged":
                log.info("%s %s", change.key, change.action)
    for (ns, name), result in sorted(compiled.items()):
        policy = policies[(ns, name)]
        if (policy.get("status") or {}) != result.status:
            try:
                store.update_status(_key(policy), result.status)
            except KeyError:  # deleted meanwhile: the next pass collects what it made
                continue


def gateway_service_ports(objects: list[Obj]) -> dict[tuple[str, str], list[Obj]]:
    """(namespace, IstioGateway name) -> Service ports its policies need and it lacks."""
    out: dict[tuple[str, str], list[Obj]] = {}
    for result in compiler.compile_all(objects).values():
        if result.gateway is None or result.status.get("status") != compiler.APPLIED:
            continue
        have = {p.get("port") for p in out.get(result.gateway, [])}
        for port in result.service_ports:
            if port["port"] not in have:
                out.setdefault(result.gateway, []).append(port)
                have.add(port["port"])
    return out


def expose_ports(gateway_objects: list[Obj], objects: list[Obj]) -> list[Obj]:
    """The IstioGateway controller's ``gateway_objects`` with each gateway Service given
    the ports its policies need (sorted, after the IstioGateway's own)."""
    extra = gateway_service_ports(objects)
    if not extra:
        return gateway_objects
    out = []
    for obj in gateway_objects:
        key = _key(obj)
        ports = extra.get((key.namespace, key.name))
        if obj.get("kind") == "Service" and key.group == "" and ports:
            spec = dict(obj.get("spec") or {})
            spec["ports"] = [*spec.get("ports", []), *sorted(ports, key=lambda p: p["port"])]
            obj = {**obj, "spec": spec}
        out.append(obj)
    return out
