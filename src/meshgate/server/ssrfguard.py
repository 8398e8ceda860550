"""The SSRF guard's rules for every gateway pod, from the store and the snapshot.

Rules:
- Every router pod (``meshgate.io/proxy-type: router``) gets the guard of
  ``runtime.ssrfguard`` in its own network namespace, matching its proxy alone.
- Explicitly allowed destinations are what the gateway's own configuration sends to by
  address, never by name: the endpoints (address and port) of the STATIC and EDS clusters
  its routes and TCP proxies name, i.e. a ServiceEntry's STATIC endpoint addresses and the
  pods behind a Kubernetes Service (so an ingress gateway reaches its backends and an
  egress gateway routed to an in-mesh Service keeps working). A cluster that resolves a
  name by DNS allows nothing: that is exactly what the guard is for.
- MeshConfig ``gatewaySsrfGuard: false`` (true by default) empties every gateway's guard.
- ``SsrfGuard.sync`` installs a pod's rules only when their text changed, per pod
  incarnation (uid), so a re-created pod gets them again; a failure is logged and retried
  on the next pass, never raised.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2

from meshgate.model.proxy import node_id
from meshgate.model.snapshot import Snapshot
from meshgate.runtime import capture, ssrfguard
from meshgate.server import workloads as wl

log = logging.getLogger("meshgate.ssrfguard")

Obj = dict[str, Any]
TCP_PROXY = "envoy.filters.network.tcp_proxy"


def _route_clusters(route_configs: Iterable[Any]) -> set[str]:
    out: set[str] = set()
    for rc in route_configs:
        for vh in rc.virtual_hosts:
            for r in vh.routes:
                if not r.HasField("route"):
                    continue
                if r.route.cluster:
                    out.add(r.route.cluster)
                out.update(c.name for c in r.route.weighted_clusters.clusters)
    return out


def _tcp_clusters(listeners: Iterable[Any]) -> set[str]:
    out: set[str] = set()
    for listener in listeners:
        for chain in [*listener.filter_chains, listener.default_filter_chain]:
            for f in chain.filters:
                if f.name != TCP_PROXY:
                    continue
                proxy = tcp_proxy_pb2.TcpProxy()
                if f.typed_config.Unpack(proxy):
                    if proxy.cluster:
                        out.add(proxy.cluster)
                    out.update(c.name for c in proxy.weighted_clusters.clusters)
    return out


def _addresses(assignment: Any, why: str) -> list[ssrfguard.Allowed]:
    return [
        ssrfguard.Allowed(sa.address, sa.port_value, why)
        for group in assignment.endpoints
        for lb in group.lb_endpoints
        for sa in [lb.endpoint.address.socket_address]
        if sa.address and sa.port_value
    ]


def allowed_destinations(snapshot: Snapshot, namespace: str, name: str, ip: str) -> list[Any]:
    """What the gateway pod's configuration sends to by address (see the module rules)."""
    from meshgate.translate import translate  # translate imports heavy protobuf modules

    proxy = snapshot.proxy_for(node_id("router", ip, name, namespace))
    if proxy is None:
        return []
    cfg = translate(snapshot, proxy)
    used = _route_clusters(cfg.routes) | _tcp_clusters(cfg.listeners)
    eds = {a.cluster_name: a for a in cfg.endpoints}
    out: list[ssrfguard.Allowed] = []
    for cluster in cfg.clusters:
        if cluster.name not in used:
            continue
        if cluster.type == cluster_pb2.Cluster.STATIC:
            out += _addresses(cluster.load_assignment, cluster.name)
        elif cluster.type == cluster_pb2.Cluster.EDS:
            service = cluster.eds_cluster_config.service_name or cluster.name
            if service in eds:
                out += _addresses(eds[service], cluster.name)
    return out


def gateway_pods(objs: list[Obj]) -> list[tuple[str, str, str, str]]:
    """(namespace, name, uid, ip) of the router pods that have an IP."""
    out = []
    for pod in objs:
        if pod.get("kind") != "Pod" or not wl.is_router(pod):
            continue
        meta = pod.get("metadata") or {}
        ip = (pod.get("status") or {}).get("podIP")
        if ip:
            ns = meta.get("namespace") or "default"
            out.append((ns, meta.get("name", ""), meta.get("uid", ""), str(ip)))
    return sorted(out)


class SsrfGuard:
    """Keeps every gateway pod's SSRF guard in step with the mesh's configuration."""

    def __init__(self, home: Path, runtime: Any) -> None:
        self.home = home
        self.runtime = runtime
        self._texts: dict[tuple[str, str, str], tuple[str, str]] = {}
        self._last: object = None

    @property
    def settled(self) -> bool:
        """The last sync installed everything (else the next one must try again)."""
        return self._last is not None

    def _proxy_match(self) -> str:
        cgroup = self.runtime.launcher.proxy_cgroup()
        return capture.exemption(cgroup)[0]

    def sync(self, objs: list[Obj], snapshot: Snapshot, version: object) -> None:
        """``version`` identifies the configuration ``snapshot`` was built from: with it and
        the running gateway pods unchanged, nothing is translated again."""
        running = {(s.namespace, s.name): s for s in self.runtime.pod_states()}
        pods = [p for p in gateway_pods(objs) if p[:2] in running]
        if (version, pods) == self._last:
            return
        seen = set()
        failed = False
        for ns, name, uid, ip in pods:
            key = (ns, name, uid)
            seen.add(key)
            try:
                enabled = snapshot.mesh.gateway_ssrf_guard
                allowed = allowed_destinations(snapshot, ns, name, ip) if enabled else []
                texts = ssrfguard.render(self._proxy_match(), allowed, enabled=enabled)
                if self._texts.get(key) == texts:
                    continue
                ssrfguard.apply(running[(ns, name)].netns, texts)
            except Exception:
                log.exception("installing the SSRF guard of gateway pod %s/%s failed", ns, name)
                failed = True
                continue
            self._texts[key] = texts
        for gone in set(self._texts) - seen:
            del self._texts[gone]
        self._last = None if failed else (version, pods)
