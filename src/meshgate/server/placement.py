"""The scheduler's part of a reconcile pass: each Pod placed on a node (see ``nodes``).

Rules:
- A pod placed on a joined node is bound there (``spec.nodeName`` written, as the
  scheduler's binding); one placed on the control plane's own node without a nodeName is
  left as it is, so a mesh with one node stores exactly what it stored before.
- A pod that cannot be placed stays Pending with the ``PodScheduled`` condition False,
  reason ``Unschedulable`` and the scheduler's message (what ``describe pod`` shows for
  a FailedScheduling event); the condition goes once it is placed.
- Pods are looked at oldest first (by creation time, then name), so spreading is stable.
- Without any Node object (a store from before nodes, a bare test store) the control
  plane's own node is assumed.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from meshgate.api.decode import decode_object
from meshgate.server import nodes as nodes_mod
from meshgate.store.base import ConfigStore

log = logging.getLogger("meshgate.placement")

Obj = dict[str, Any]
SCHEDULED = "PodScheduled"


def _key(pod: Obj) -> tuple[str, str]:
    meta = pod.get("metadata") or {}
    return str(meta.get("namespace") or "default"), str(meta.get("name") or "")


def unscheduled(status: Obj) -> bool:
    return any(
        c.get("type") == SCHEDULED and c.get("status") == "False"
        for c in status.get("conditions") or []
    )


def without_unscheduled(status: Obj) -> Obj:
    """`status` without a PodScheduled=False condition left by an earlier pass."""
    if not unscheduled(status):
        return status
    out = dict(status)
    out["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != SCHEDULED]
    if not out["conditions"]:
        del out["conditions"]
    out.pop("reason", None)
    out.pop("message", None)
    return out


class Placer:
    def __init__(self, store: ConfigStore) -> None:
        self.store = store

    def place(self, pods: list[Obj], objs: list[Obj]) -> dict[tuple[str, str], str]:
        """(namespace, name) -> node, for every pod that has one; binds and reports as
        the rules say (the dicts in `pods` are updated as written)."""
        nodes = [o for o in objs if o.get("kind") == "Node"]
        if not any(nodes_mod.name_of(n) == nodes_mod.OWN_NODE for n in nodes):
            nodes = [nodes_mod.own_node(), *nodes]
        counts = Counter(n for p in pods if (n := nodes_mod.pod_node(p)))
        placed: dict[tuple[str, str], str] = {}
        order = sorted(
            pods, key=lambda p: (str((p.get("metadata") or {}).get("creationTimestamp")), _key(p))
        )
        for pod in order:
            was = nodes_mod.pod_node(pod)
            where = nodes_mod.place(pod, nodes, counts)
            if where.node is None:
                self._unschedulable(pod, where.reason)
                continue
            placed[_key(pod)] = where.node
            if was is None:
                counts[where.node] += 1
                if where.node != nodes_mod.OWN_NODE:
                    self._bind(pod, where.node)
        return placed

    def _bind(self, pod: Obj, node: str) -> None:
        log.info("pod %s/%s placed on node %s", *_key(pod), node)
        bound = {k: v for k, v in pod.items() if k != "status"}
        bound["spec"] = {**(pod.get("spec") or {}), "nodeName": node}
        res, _ = decode_object(bound)
        self.store.apply([res.to_wire() if res is not None else bound])
        pod["spec"] = bound["spec"]

    def _unschedulable(self, pod: Obj, reason: str) -> None:
        status = dict(pod.get("status") or {})
        cond = {"type": SCHEDULED, "status": "False", "reason": "Unschedulable", "message": reason}
        # Nothing runs it (any more): only its address stays, as it is still allocated.
        wanted = {
            **{k: v for k, v in status.items() if k in ("podIP", "podIPs")},
            "phase": "Pending",
            "conditions": [cond],
        }
        if wanted != status:
            log.warning("pod %s/%s cannot be placed: %s", *_key(pod), reason)
            pod["status"] = wanted
            meta = pod.get("metadata") or {}
            from meshgate.api.meta import ResourceKey

            key = ResourceKey("", "Pod", str(meta.get("namespace") or "default"), str(meta["name"]))
            self.store.update_status(key, wanted)
