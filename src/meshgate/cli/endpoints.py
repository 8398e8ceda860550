"""``get endpoints`` as Kubernetes shows it: the Endpoints of a Service with a selector are
computed by meshgate from the ready pods it selects (Kubernetes' endpoints controller would
have written them), the others are the objects users applied.

Rules: computed objects replace a stored one of the same name (the controller would
overwrite it) and carry the Service's labels, so ``-l`` selects them as Kubernetes'
copies; they are read-only views, never written to the store. Pods and Services are read
through the same backend as everything else ``get`` prints.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from meshgate.cli.backend import Backend

Obj = dict[str, Any]


def with_computed(
    backend: Backend,
    namespace: str | None,
    name: str | None,
    selector: str | None,
    stored: list[Obj],
) -> list[Obj]:
    """``stored`` Endpoints, with those of selector Services computed from their pods."""
    from meshgate.api.registry import by_group_kind
    from meshgate.cli.backend import sort_objects
    from meshgate.cli.selector import parse_selector
    from meshgate.model.kubeendpoints import computed_endpoints
    from meshgate.model.services import from_kubernetes, pod_info

    svc_kind, pod_kind = by_group_kind("", "Service"), by_group_kind("", "Pod")
    if svc_kind is None or pod_kind is None:
        return stored
    services = [
        s
        for s in backend.get(svc_kind, namespace, name, None)
        if (s.get("spec") or {}).get("selector")
        and (s.get("spec") or {}).get("type") != "ExternalName"
    ]
    if not services:
        return stored
    wanted = parse_selector(selector)
    pods = [pod_info(p) for p in backend.get(pod_kind, namespace, None, None)]
    computed: dict[tuple[str, str], Obj] = {}
    for svc in services:
        meta = svc.get("metadata") or {}
        key = (str(meta.get("namespace") or "default"), str(meta.get("name") or ""))
        model = from_kubernetes(svc, "", [p for p in pods if p.namespace == key[0]])
        computed[key] = computed_endpoints(svc, model.endpoints, model.ports)
    kept = [o for o in stored if _key(o) not in computed]
    shown = [o for o in computed.values() if wanted.matches(o["metadata"].get("labels"))]
    return sort_objects(kept + shown)


def _key(obj: Obj) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or "default"), str(meta.get("name") or ""))
