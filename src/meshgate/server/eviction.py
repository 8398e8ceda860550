"""Taint-based eviction (Kubernetes' node lifecycle controller, in small): the pods of a
joined node that stopped reporting are deleted once their tolerations run out, so that
their Deployments make them again on a Ready node.

Rules:
- A joined node whose ``Ready`` condition is not True has the ``NoExecute`` taint
  ``node.kubernetes.io/unreachable`` (Ready ``Unknown``, or reason ``NodeStatusUnknown``:
  its agent stopped posting status) or ``node.kubernetes.io/not-ready`` (Ready False),
  since the condition's ``lastTransitionTime``. The control plane's own node is never
  tainted here: it runs the control plane itself.
- A pod bound to such a node (``spec.nodeName``) tolerates the taint for the
  ``tolerationSeconds`` of its first toleration that matches it (operator ``Exists`` with
  no key or the taint's key, or ``Equal`` with the key and an empty value; effect
  ``NoExecute`` or none); one that matches with no ``tolerationSeconds`` tolerates it for
  ever. A pod that lists no toleration for that key gets Kubernetes' default (what its
  DefaultTolerationSeconds admission adds): ``DEFAULT_TOLERATION`` seconds.
- Eviction deletes the Pod from the store, with a log line naming node, taint and
  toleration; its owner (a Deployment's ReplicaSet) makes a new one, which placement puts
  on a Ready node. A pod without an owner is gone, as in Kubernetes.
- ``evict`` returns whether an eviction is still to come (a pod tolerating for a while):
  the reconciler keeps looking each pass until then, since nothing in the store changes
  when a toleration runs out.
- Pure over the listed objects and ``now``; the leader runs it (reconcile, fenced).
"""

from __future__ import annotations

import datetime
import logging
from typing import Any

from meshgate.server import nodes as nodes_mod

log = logging.getLogger("meshgate.eviction")

Obj = dict[str, Any]

UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"
NO_EXECUTE = "NoExecute"
DEFAULT_TOLERATION = 300.0  # seconds: Kubernetes' DefaultTolerationSeconds


def taint_of(node: Obj) -> tuple[str, datetime.datetime] | None:
    """The NoExecute taint of a node that is not Ready, and since when; None if Ready."""
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") != "Ready":
            continue
        status = cond.get("status")
        if status == "True":
            return None
        unknown = status == "Unknown" or cond.get("reason") == "NodeStatusUnknown"
        since = _parse_time(cond.get("lastTransitionTime"))
        return (UNREACHABLE if unknown else NOT_READY), since
    return None


def tolerated_for(pod: Obj, taint: str) -> float | None:
    """Seconds ``pod`` tolerates ``taint`` (NoExecute); None: for ever."""
    tolerations = ((pod.get("spec") or {}).get("tolerations")) or []
    listed_key = False
    for t in tolerations:
        key = t.get("key") or ""
        listed_key = listed_key or key == taint
        operator = t.get("operator") or "Equal"
        if operator == "Exists":
            matches = key in ("", taint)
        else:
            matches = key == taint and not t.get("value")
        if not matches or t.get("effect") not in (None, "", NO_EXECUTE):
            continue
        seconds = t.get("tolerationSeconds")
        return None if seconds is None else max(0.0, float(seconds))
    # The default is added only where the pod lists nothing for that key (admission).
    return 0.0 if listed_key else DEFAULT_TOLERATION


def due(objs: list[Obj], now: datetime.datetime) -> tuple[list[tuple[Obj, str]], bool]:
    """Pods to evict now (each with the reason), and whether an eviction is to come."""
    tainted: dict[str, tuple[str, datetime.datetime]] = {}
    for o in objs:
        if o.get("kind") != "Node" or nodes_mod.name_of(o) == nodes_mod.OWN_NODE:
            continue
        found = taint_of(o)
        if found is not None:
            tainted[nodes_mod.name_of(o)] = found
    if not tainted:
        return [], False
    out: list[tuple[Obj, str]] = []
    later = False
    for pod in objs:
        if pod.get("kind") != "Pod" or (pod.get("metadata") or {}).get("deletionTimestamp"):
            continue
        node = (pod.get("spec") or {}).get("nodeName")
        if node not in tainted:
            continue
        taint, since = tainted[node]
        seconds = tolerated_for(pod, taint)
        if seconds is None:
            continue
        waited = (now - since).total_seconds()
        if waited >= seconds:
            out.append((pod, f"node {node} has taint {taint}:{NO_EXECUTE} for {waited:.0f}s, "
                             f"tolerated {seconds:g}s"))  # fmt: skip
        else:
            later = True
    return out, later


def _parse_time(text: object) -> datetime.datetime:
    try:
        when = datetime.datetime.fromisoformat(str(text))
    except ValueError:
        return datetime.datetime.now(datetime.UTC)  # unknown: counted from now
    return when if when.tzinfo else when.replace(tzinfo=datetime.UTC)
