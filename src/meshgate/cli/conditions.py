"""An object's status conditions as ``wait`` and ``rollout status`` read them.

Rules:
- A Pod's conditions are the ones the runtime records (``Ready``, ``ContainersReady``).
- A Deployment's stored ``status.conditions`` win when present; meshgate's controller
  keeps counts only, so ``Available`` is derived as Kubernetes' controller sets it:
  True when ``availableReplicas`` >= ``replicas`` - maxUnavailable (the status must have
  observed the current generation), and ``Progressing`` True while the rollout is not
  complete.
- Condition types compare case-insensitively, as kubectl's ``wait`` does.
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]


def conditions(obj: Obj) -> dict[str, str]:
    """Condition type (lower case) -> status (``True``/``False``/``Unknown``)."""
    status = obj.get("status") or {}
    stored = {
        str(c.get("type", "")).lower(): str(c.get("status", ""))
        for c in status.get("conditions") or []
    }
    if stored or obj.get("kind") != "Deployment":
        return stored
    return deployment_conditions(obj)


def deployment_conditions(dep: Obj) -> dict[str, str]:
    from meshgate.server.workloads import rolling_limits

    spec = dep.get("spec") or {}
    status = dep.get("status") or {}
    meta = dep.get("metadata") or {}
    if not status or status.get("observedGeneration", 0) < meta.get("generation", 1):
        return {}
    replicas = int(spec.get("replicas", 1))
    _, unavailable = rolling_limits(dep)
    if (spec.get("strategy") or {}).get("type") == "Recreate":
        unavailable = replicas
    available = int(status.get("availableReplicas", 0)) >= replicas - unavailable
    return {
        "available": "True" if available else "False",
        "progressing": "True",
    }


def rollout_message(dep: Obj) -> tuple[str, bool]:
    """kubectl's DeploymentStatusViewer: (the line to print, whether the rollout is done)."""
    name = (dep.get("metadata") or {}).get("name", "")
    spec = dep.get("spec") or {}
    status = dep.get("status") or {}
    generation = (dep.get("metadata") or {}).get("generation", 1)
    if not status or generation > status.get("observedGeneration", 0):
        return "Waiting for deployment spec update to be observed...", False
    replicas = int(spec.get("replicas", 1))
    updated = int(status.get("updatedReplicas", 0))
    total = int(status.get("replicas", 0))
    available = int(status.get("availableReplicas", 0))
    prefix = f'Waiting for deployment "{name}" rollout to finish: '
    if updated < replicas:
        return f"{prefix}{updated} out of {replicas} new replicas have been updated...", False
    if total > updated:
        return f"{prefix}{total - updated} old replicas are pending termination...", False
    if available < updated:
        return f"{prefix}{available} of {updated} updated replicas are available...", False
    return f'deployment "{name}" successfully rolled out', True
