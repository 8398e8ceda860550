"""Pod IP allocation, per pod range (the node's own, or a joined node's podCIDR).

Rules:
- Pod IPs are allocated before a pod starts, because the proxy's node id (and so its
  configuration) names its IP; an allocated IP is kept in the Pod's status. Addresses
  are handed out in turn, after the last one given (as a host-local IPAM does), so a
  freed address is not reused at once, and never while a stopping pod still holds it.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from meshgate.runtime.pods import Runtime

Obj = dict[str, Any]
POD_NET = ipaddress.ip_network("10.34.0.0/16")
FIRST_POD_HOST = 10  # .1 is the node bridge; keep a few for infrastructure


class PodAddresses:
    """The ``Reconciler``'s IPAM (a mixin: its state is the reconciler's)."""

    runtime: Runtime
    _next_host: dict[str, int]  # per pod range: where the next address is

    def _allocate_ip(self, pods: list[Obj], cidr: str = str(POD_NET)) -> str:
        net = ipaddress.ip_network(cidr)
        used = {(p.get("status") or {}).get("podIP") for p in pods}
        used |= {s.ip for s in self.runtime.pod_states()}
        used = {ip for ip in used if ip and ipaddress.ip_address(ip) in net}
        hosts = [int(ipaddress.ip_address(ip)) - int(net.network_address) for ip in used if ip]
        if cidr not in self._next_host:  # after a restart: go on after the highest in use
            self._next_host[cidr] = max([FIRST_POD_HOST - 1, *hosts]) + 1
        span = net.num_addresses - 1 - FIRST_POD_HOST
        for i in range(span):
            host = FIRST_POD_HOST + (self._next_host[cidr] - FIRST_POD_HOST + i) % span
            ip = str(net.network_address + host)
            if ip not in used:
                self._next_host[cidr] = host + 1
                return ip
        raise RuntimeError(f"pod network {cidr} is full")
