"""Cluster IPs that work without a sidecar: kube-proxy's job, in the node namespace.

Rules:
- A pod's traffic to a Service's cluster IP (10.96.x.y) leaves the pod by its default route
  to the node, where nat PREROUTING chain ``MESHGATE-SERVICES`` DNATs it to one of the
  Service's ready pod endpoints (random choice, as kube-proxy's iptables mode does). Pods
  with a sidecar rarely need it (their proxy dials pod endpoints itself); passthrough
  traffic and pods without a sidecar do.
- Pods share one bridge, so a DNATed reply would go straight back over the bridge and miss
  the node's connection tracking: DNATed connections are masqueraded to the bridge address
  (chain ``MESHGATE-SVC-MASQ`` in POSTROUTING). Traffic to pod IPs is never touched, so the
  seed's gateway log still sees the sleep pod's own address.
- Everything lives in the node namespace (created by the mesh, gone with it); the host's
  own tables are never touched. ``render`` is pure; ``apply`` replaces both chains at once.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from dataclasses import dataclass

from meshgate.runtime import netns

CHAIN = "MESHGATE-SERVICES"
MASQ_CHAIN = "MESHGATE-SVC-MASQ"


@dataclass(frozen=True, order=True)
class ServiceRoute:
    """One cluster IP and port, and the pod addresses and ports behind it."""

    vip: str
    port: int
    endpoints: tuple[tuple[str, int], ...]


def render(routes: Iterable[ServiceRoute]) -> str:
    """iptables-restore input (``--noflush``: only our two chains are replaced)."""
    lines = ["*nat", f":{CHAIN} - [0:0]", f":{MASQ_CHAIN} - [0:0]"]
    for r in sorted(routes):
        n = len(r.endpoints)
        for i, (ip, port) in enumerate(r.endpoints):
            pick = ""
            if i < n - 1:  # endpoint i takes 1/(n-i) of what the ones before it left
                pick = f" -m statistic --mode random --probability {1 / (n - i):.5f}"
            lines.append(
                f"-A {CHAIN} -d {r.vip}/32 -p tcp -m tcp --dport {r.port}{pick}"
                f" -j DNAT --to-destination {ip}:{port}"
            )
    lines.append(f"-A {MASQ_CHAIN} -m conntrack --ctstate DNAT -j MASQUERADE")
    lines += ["COMMIT", ""]
    return "\n".join(lines)


def apply(node_netns: str, text: str) -> None:
    """Install ``text`` (from ``render``) in the node namespace, and hook the chains in."""
    prefix = netns.exec_prefix(node_netns)
    netns.run([*prefix, "iptables-restore", "--noflush"], input_text=text)
    for hook, chain in (("PREROUTING", CHAIN), ("POSTROUTING", MASQ_CHAIN)):
        check = [*prefix, "iptables", "-t", "nat", "-C", hook, "-j", chain]
        if subprocess.run(check, capture_output=True, check=False).returncode != 0:
            netns.run([*prefix, "iptables", "-t", "nat", "-A", hook, "-j", chain])
