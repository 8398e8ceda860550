"""Nodes: the Node objects, their pod ranges and links, and where each pod is placed.

Rules:
- The control plane's own node is ``meshgate-node`` (what ``get pods -o wide`` has always
  shown), pod range 10.34.0.0/16, labelled ``kubernetes.io/hostname`` and
  ``node-role.kubernetes.io/control-plane``. It is written once at start, Ready; no
  heartbeat writes the store (an idle mesh writes nothing).
- A joined node gets the first free /16 of 10.35.0.0 .. 10.63.0.0 as its ``spec.podCIDR``;
  its link to the first node is 10.33.<second octet>.0/30 (.1 on the first node, .2 on
  the joined one). Its Ready condition is written when it changes: True at join and while
  the agent reports, False once it has not for ``GRACE`` seconds (Kubernetes' node
  monitor grace period).
- Placement (Kubernetes' scheduler, in small): ``spec.nodeName`` if set (a node that does
  not exist leaves the pod Pending); else the Ready nodes matching ``spec.nodeSelector``
  (none: Pending, Unschedulable, with the scheduler's message); else among those the node
  with the fewest pods, the control plane's own node first on a tie, so a mesh with one
  node places every pod as before. A pod already given an address stays where it is.
- Pure functions over plain dicts: the reconciler writes what they decide.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from meshgate import __version__

Obj = dict[str, Any]
OWN_NODE = "meshgate-node"
OWN_POD_CIDR = "10.34.0.0/16"
OWN_NODE_IP = "10.34.0.1"
FIRST_JOINED, LAST_JOINED = 35, 63  # second octets of joined nodes' pod ranges
GRACE = 40.0  # seconds without a report before a joined node is NotReady
HOSTNAME_LABEL = "kubernetes.io/hostname"
ROLE_CONTROL_PLANE = "node-role.kubernetes.io/control-plane"


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def node_object(
    name: str,
    pod_cidr: str,
    address: str,
    *,
    ready: bool,
    control_plane: bool = False,
    labels: Mapping[str, str] | None = None,
    reason: str = "",
) -> Obj:
    labels = {HOSTNAME_LABEL: name, **(labels or {})}
    if control_plane:
        labels[ROLE_CONTROL_PLANE] = ""
    message = "meshgate node agent is posting ready status" if ready else reason
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": dict(sorted(labels.items()))},
        "spec": {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr]},
        "status": ready_status(address, ready, message),
    }


def ready_status(address: str, ready: bool, message: str) -> Obj:
    return {
        "conditions": [
            {
                "type": "Ready",
                "status": "True" if ready else "False",
                "reason": "KubeletReady" if ready else "NodeStatusUnknown",
                "message": message,
                "lastTransitionTime": _now(),
            }
        ],
        "addresses": [{"type": "InternalIP", "address": address}],
        "nodeInfo": {"kubeletVersion": f"v{__version__}", "containerRuntime": "meshgate"},
    }


def own_node() -> Obj:
    return node_object(OWN_NODE, OWN_POD_CIDR, OWN_NODE_IP, ready=True, control_plane=True)


def is_ready(node: Obj) -> bool:
    conds = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


def pod_cidr(node: Obj) -> str:
    return str((node.get("spec") or {}).get("podCIDR") or "")


def name_of(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def next_pod_cidr(nodes: Iterable[Obj]) -> str:
    used = {pod_cidr(n) for n in nodes}
    for octet in range(FIRST_JOINED, LAST_JOINED + 1):
        cidr = f"10.{octet}.0.0/16"
        if cidr not in used:
            return cidr
    raise ValueError(f"no pod range left: {LAST_JOINED - FIRST_JOINED + 1} nodes have joined")


@dataclass(frozen=True)
class Link:
    """The routed link between the first node and a joined one."""

    first_ip: str  # on the first node's side
    node_ip: str  # on the joined node's side
    prefix_len: int = 30


def link_for(cidr: str) -> Link:
    octet = ipaddress.ip_network(cidr).network_address.packed[1]
    return Link(f"10.33.{octet}.1", f"10.33.{octet}.2")


def gateway_ip(cidr: str) -> str:
    """The node's own address on its pod bridge: the range's first host."""
    return str(ipaddress.ip_network(cidr).network_address + 1)


@dataclass(frozen=True)
class Placement:
    node: str | None  # None: not placed (Pending)
    reason: str = ""  # why not


def pod_node(pod: Obj) -> str | None:
    """The node a pod is bound to: its nodeName, else (an address given by an earlier
    pass, without a binding) the control plane's own."""
    name = (pod.get("spec") or {}).get("nodeName")
    if name:
        return str(name)
    return OWN_NODE if (pod.get("status") or {}).get("podIP") else None


def place(pod: Obj, nodes: list[Obj], counts: Mapping[str, int]) -> Placement:
    """Where `pod` runs (see the rules); `counts` are the pods each node has now."""
    bound = pod_node(pod)
    by_name = {name_of(n): n for n in nodes}
    if bound is not None:
        if bound not in by_name:
            return Placement(None, f'node "{bound}" not found')
        return Placement(bound)
    selector = (pod.get("spec") or {}).get("nodeSelector") or {}
    ready = [n for n in nodes if is_ready(n)]
    fits = [
        n
        for n in ready
        if all(
            ((n.get("metadata") or {}).get("labels") or {}).get(k) == v for k, v in selector.items()
        )
    ]
    if not fits:
        total = len(nodes)
        why = [f"{total - len(ready)} node(s) were not ready"] if len(ready) < total else []
        if len(fits) < len(ready):
            why.append(f"{len(ready)} node(s) didn't match Pod's node affinity/selector")
        return Placement(None, f"0/{total} nodes are available: {', '.join(why) or 'no nodes'}.")
    best = min(fits, key=lambda n: (counts.get(name_of(n), 0), name_of(n) != OWN_NODE, name_of(n)))
    return Placement(name_of(best))
