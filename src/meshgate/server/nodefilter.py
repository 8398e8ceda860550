"""The node's filter rules from the store: NetworkPolicies, pods, namespaces, MeshConfig.

Rules:
- Inputs are the store's canonical wire dicts; ``inputs`` is pure and turns them into what
  ``runtime.netpolicy.render`` takes. Pods count once they have an IP (allocated before
  they start), so a pod's rules are in place before its containers run, as a CNI
  plugin's are.
- A gateway pod is a router (``meshgate.io/proxy-type: router``, what the IstioGateway
  controller makes) whose only container is the gateway proxy: nothing but the Envoy the
  control plane configures runs in it. A router pod with an app container of its own is
  not a gateway, so an annotation alone lets nobody out.
- Every node gets the same rules over the whole mesh's pods and policies; the other
  nodes' pod ranges (from the Node objects) count as inside the mesh for the exit. A
  joined node's rules are rendered here too (``nodeconfig``) and installed by its agent.
- ``NodeFilter.sync`` installs the rules only when their text changed (idempotent, our own
  chains only); a failure is logged and retried on the next pass, never raised (the mesh
  keeps working through its sidecars meanwhile).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshgate.api.decode import decode_object
from meshgate.api.kinds import kubernetes as kube
from meshgate.api.kinds import meshgate_kinds as mg
from meshgate.runtime import names, netpolicy
from meshgate.server import workloads as wl

log = logging.getLogger("meshgate.nodefilter")

Obj = dict[str, Any]


@dataclass(frozen=True)
class Inputs:
    policies: list[netpolicy.Policy]
    pods: list[netpolicy.PodInfo]
    namespaces: dict[str, dict[str, str]]
    gateway_only: bool
    pod_cidrs: list[str]  # every node's pod range


def is_gateway(pod: Obj) -> bool:
    containers = (pod.get("spec") or {}).get("containers") or []
    return wl.is_router(pod) and all(c.get("name") == wl.PROXY_CONTAINER for c in containers)


def _pod_info(pod: Obj) -> netpolicy.PodInfo | None:
    meta = pod.get("metadata") or {}
    ip = (pod.get("status") or {}).get("podIP")
    if not ip:
        return None
    ports = tuple(
        netpolicy.PodPort(str(p["name"]), int(p["containerPort"]), str(p.get("protocol", "TCP")))
        for c in (pod.get("spec") or {}).get("containers") or []
        for p in c.get("ports") or []
        if p.get("name") and isinstance(p.get("containerPort"), int)
    )
    return netpolicy.PodInfo(
        namespace=meta.get("namespace") or "default",
        name=meta.get("name", ""),
        ip=str(ip),
        labels=dict(meta.get("labels") or {}),
        ports=ports,
        gateway=is_gateway(pod),
    )


def inputs(objs: list[Obj]) -> Inputs:
    policies: list[netpolicy.Policy] = []
    pods: list[netpolicy.PodInfo] = []
    namespaces: dict[str, dict[str, str]] = {}
    gateway_only = False
    pod_cidrs: list[str] = []
    for obj in objs:
        kind = obj.get("kind")
        meta = obj.get("metadata") or {}
        if kind == "Pod":
            info = _pod_info(obj)
            if info is not None:
                pods.append(info)
        elif kind == "Node":
            cidr = str((obj.get("spec") or {}).get("podCIDR") or "")
            if cidr:
                pod_cidrs.append(cidr)
        elif kind == "Namespace":
            namespaces[meta.get("name", "")] = dict(meta.get("labels") or {})
        elif kind in ("NetworkPolicy", "MeshConfig"):
            res, _ = decode_object(obj)
            if isinstance(res, kube.NetworkPolicy):
                policies.append(netpolicy.Policy(res.namespace, res.metadata.name, res.spec))
            elif isinstance(res, mg.MeshConfig) and res.metadata.name == mg.MESH_CONFIG_NAME:
                gateway_only = res.spec.effective_egress_enforcement == "GATEWAY_ONLY"
    return Inputs(policies, pods, namespaces, gateway_only, pod_cidrs)


def render(
    objs: list[Obj],
    node_cidr: str = names.POD_NETWORK,
    dns_ip: str = names.BRIDGE_IP,
    xds: str | None = None,
) -> str:
    """The filter rules of the node whose pod range is ``node_cidr`` (the first node's by
    default; a joined node's DNS address and xDS address are its own: see netpolicy)."""
    i = inputs(objs)
    return netpolicy.render(
        i.policies,
        i.pods,
        i.namespaces,
        gateway_only=i.gateway_only,
        dns_ip=dns_ip,
        mesh_cidrs=sorted({names.POD_NETWORK, *i.pod_cidrs} - {node_cidr}),
        xds=xds,
    )


class NodeFilter:
    """Keeps the node's filter rules in step with the store."""

    def __init__(self, home: Path) -> None:
        self.node = names.node_netns(names.mesh_id(home))
        self._text = ""
        self.settled = True  # False: the last sync failed, the next must try again

    def sync(self, objs: list[Obj]) -> None:
        text = render(objs)
        if text == self._text:
            self.settled = True
            return
        try:
            netpolicy.apply(self.node, text)
        except netpolicy.BridgeFilterMissing as exc:
            log.warning("%s", exc)
        except Exception:
            log.exception("installing the node's NetworkPolicy and exit rules failed")
            self.settled = False
            return
        self._text = text
        self.settled = True
