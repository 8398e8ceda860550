"""What a joined node installs besides its pods: its DNS zone, filter rules and NAT rules.

Rules:
- One source of truth: the control plane renders everything here from the store and its
  snapshot, with the same functions the first node's rules come from (``nodefilter``,
  ``servicenat``, the DNS zone files); the node agent fetches it (``GET /node/v1/config``
  over mTLS) and installs it in its own namespace, each part only when it changed.
- The zone is the one the first node's DNS serves (every layer of ``<home>/dns``: the
  mesh's names and the world's), so a joined node's own DNS answers the same names while
  the first node's DNS is down. Names outside it are forwarded to the first node's DNS
  (``dnsUpstream``), which forwards them on when the mesh has an uplink.
- The filter rules are the first node's (NetworkPolicy over the whole mesh's pods, the
  ``egressEnforcement`` exit), with the node's own DNS address, the other nodes' pod
  ranges inside the mesh, and the proxies' xDS on the first node allowed.
- NAT: every Service cluster IP DNATs to its ready endpoints, wherever they run.
- Gateways: for each gateway pod placed on the node, its SSRF guard's inputs (``server.
  ssrfguard``: on or off, the destinations its configuration sends to by address), plus
  the proxies' xDS on the first node (inside the guarded pod range, and the only way its
  proxy gets a configuration). The agent renders the rules with its own proxies' match
  (their cgroup lives on its machine) and its DNS address.
- ``version`` is a digest of the rest: an agent that already has it gets ``unchanged``
  instead of the whole document. Rendering is cached per store revision, snapshot and
  zone files, so an idle mesh renders nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

from meshgate.model.snapshot import Snapshot
from meshgate.runtime import dns, servicenat
from meshgate.runtime import ssrfguard as runtime_guard
from meshgate.server import nodefilter, ssrfguard
from meshgate.server import nodes as nodes_mod
from meshgate.store.base import ConfigStore

Obj = dict[str, Any]
FILTER_KINDS = ("Pod", "Namespace", "NetworkPolicy", "MeshConfig", "Node")


def service_routes(snap: Snapshot) -> list[servicenat.ServiceRoute]:
    """kube-proxy's table: each Kubernetes Service's cluster IP and port -> its ready
    pod endpoints."""
    routes = []
    for services in snap.services_by_host.values():
        for svc in services:
            if not svc.is_kubernetes or not svc.addresses:
                continue
            for port in svc.ports:
                eps = tuple((e.address, e.port) for e in svc.endpoints.get(port.number, ()))
                if eps:
                    routes.append(servicenat.ServiceRoute(svc.addresses[0], port.number, eps))
    return routes


def _zone_stamp(directory: Path) -> tuple[Any, ...]:
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except FileNotFoundError:
        return ()
    return tuple((e.name, e.stat().st_mtime_ns, e.inode()) for e in entries)


class NodeConfigs:
    """Renders (and caches) each joined node's configuration."""

    def __init__(self, home: Path, store: ConfigStore, xds_address: str) -> None:
        self.home = home
        self.store = store
        self.xds_address = xds_address  # where joined nodes' proxies reach xDS
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[tuple[Any, ...], Obj]] = {}

    def config(self, node: Obj, snapshot: Snapshot) -> Obj:
        name = nodes_mod.name_of(node)
        cidr = nodes_mod.pod_cidr(node)
        zone_dir = dns.zone_dir(self.home)
        key = (self.store.revision(), id(snapshot), cidr, _zone_stamp(zone_dir))
        with self._lock:
            cached = self._cache.get(name)
            if cached is not None and cached[0] == key:
                return cached[1]
        objs = [s.object for kind in FILTER_KINDS for s in self.store.list(kind=kind)]
        body: Obj = {
            "zone": dns.read_zone(zone_dir),
            "dnsUpstream": f"{nodes_mod.OWN_NODE_IP}:53",
            "filter": nodefilter.render(
                objs, node_cidr=cidr, dns_ip=nodes_mod.gateway_ip(cidr), xds=self.xds_address
            ),
            "nat": servicenat.render(service_routes(snapshot)),
            "gateways": self._gateways(name, objs, snapshot),
        }
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
        body["version"] = digest
        with self._lock:
            self._cache[name] = (key, body)
        return body

    def _gateways(self, node: str, objs: list[Obj], snapshot: Snapshot) -> Obj:
        enabled = snapshot.mesh.gateway_ssrf_guard
        host, _, port = self.xds_address.rpartition(":")
        mine = {
            (nodes_mod.name_of(p), (p.get("metadata") or {}).get("namespace") or "default")
            for p in objs
            if p.get("kind") == "Pod" and (p.get("spec") or {}).get("nodeName") == node
        }
        out: Obj = {}
        for ns, name, _, ip in ssrfguard.gateway_pods(objs):
            if (name, ns) not in mine:
                continue
            allowed = ssrfguard.allowed_destinations(snapshot, ns, name, ip) if enabled else []
            allowed.append(runtime_guard.Allowed(host, int(port), "the proxies' xDS"))
            out[f"{ns}/{name}"] = {
                "enabled": enabled,
                "allowed": [[a.ip, a.port, a.why] for a in sorted(set(allowed))],
            }
        return out
