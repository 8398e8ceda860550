"""A pod's network: its namespace, the veth to the node bridge, its address and routes.

Rules:
- The pod's namespace is `mg-<mesh id>-<pod id>`; the node end of its veth is
  `mgv<pod id>` on the node bridge; the pod end is `eth0` with the pod's IP, a default route
  via the bridge, and a gratuitous ARP when it comes up.
- Every port is unprivileged inside a pod (``net.ipv4.ip_unprivileged_port_start=0``, a
  per-namespace sysctl), as container runtimes make a pod's namespace: a non-root app
  binds 80 or 443 there, and only there.
- Recorded before created (namespace and veth in the manifest, by `reserve`, in the same
  write as the pod's record and address), forgotten after deleted, so a crash at any point
  leaves `teardown` able to remove all of it.
- IPs come from the node's pod network (`PodNetwork`: 10.34.0.0/16 on the control
  plane's node, a joined node's podCIDR on it), never the bridge's, never one in use.
  Pods start in several threads (and a CLI may run a runtime beside the control
  plane), so an address is chosen and recorded in one step under the manifest's lock
  (`reserve`): two pods starting at once never get the same one.
"""

from __future__ import annotations

import ipaddress
import shutil
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from meshgate.runtime import manifest, names, netns
from meshgate.runtime.podspec import PodError


@dataclass(frozen=True)
class PodNetwork:
    """A node's pod range and its bridge's address (the pods' default gateway)."""

    cidr: str = names.POD_NETWORK
    gateway: str = names.BRIDGE_IP

    @property
    def prefix_len(self) -> int:
        return ipaddress.ip_network(self.cidr).prefixlen


DEFAULT = PodNetwork()


def allocate_ip(asked: str | None, in_use: Collection[str], network: PodNetwork = DEFAULT) -> str:
    """`asked` if it is free and in the pod network, else the first free address."""
    net = ipaddress.ip_network(network.cidr)
    used = set(in_use) | {network.gateway}
    if asked is not None:
        addr = ipaddress.ip_address(asked)
        if addr not in net or addr in (net.network_address, net.broadcast_address):
            raise PodError(f"pod IP {asked} is not in {net}")
        if str(addr) in used:
            raise PodError(f"pod IP {asked} is in use")
        return str(addr)
    for addr in net.hosts():
        if str(addr) not in used:
            return str(addr)
    raise PodError("pod network exhausted")


def reserve(
    man: manifest.Manifest,
    section: str,
    key: str,
    namespace: str,
    name: str,
    asked: str | None,
    record: Callable[[str], dict[str, Any]],
    network: PodNetwork = DEFAULT,
) -> dict[str, Any]:
    """Choose the pod's IP (`allocate_ip`, among the addresses the other records of the
    manifest's `section` hold) and store `record(ip)` there under `key`, and record the
    namespace and veth `wire` makes for the pod (`namespace`, `name`), in one edit under
    the manifest's lock (every write costs the whole manifest); the record stored. A
    record already under `key` is replaced (its address is free for it)."""
    pid = names.pod_id(namespace, name)
    ns = names.pod_netns(man.mesh_id, pid)
    if not ns.startswith(names.netns_prefix(man.mesh_id)):
        raise ValueError(f"refusing to record {ns}: not named after mesh {man.mesh_id}")
    veth = [names.node_netns(man.mesh_id), names.pod_host_ifname(pid)]
    with man.edit() as m:
        records = m["sections"].setdefault(section, {})
        ip = allocate_ip(asked, [r["ip"] for k, r in records.items() if k != key], network)
        rec = record(ip)
        records[key] = rec
        for field, item in (("netns", ns), ("etc_netns", ns), ("veths", veth)):
            if item not in m[field]:
                m[field].append(item)
    return rec


def wire(
    man: manifest.Manifest,
    mesh_id: str,
    namespace: str,
    name: str,
    ip: str,
    recorded: bool = False,
    network: PodNetwork = DEFAULT,
) -> str:
    """Make the pod's namespace and link it to the node; the namespace's name. Both are
    recorded first: here, unless `reserve` has (`recorded`)."""
    pid = names.pod_id(namespace, name)
    ns = names.pod_netns(mesh_id, pid)
    node = names.node_netns(mesh_id)
    host_if = names.pod_host_ifname(pid)
    if not recorded:
        man.record_netns(ns)
        man.record_veth(node, host_if)
    if netns.exists(ns):  # left over from a crash between record and pod record update
        netns.delete(ns)
    netns.add(ns)
    netns.ip(node, "link", "del", host_if, check=False)
    netns.ip(
        node, "link", "add", host_if, "type", "veth",
        "peer", "name", names.POD_IFNAME, "netns", ns,
    )  # fmt: skip
    netns.ip(node, "link", "set", host_if, "master", names.BRIDGE, "up")
    netns.ip(ns, "addr", "add", f"{ip}/{network.prefix_len}", "dev", names.POD_IFNAME)
    # A gratuitous ARP when eth0 comes up: peers that still map this IP to the MAC of a
    # pod that had it before must learn the new one, or they send into the void until
    # their neighbour entry expires (up to 45 s for an entry just confirmed).
    # Every port is unprivileged in a pod, as containerd (2.0 on: enable_unprivileged_ports),
    # Docker and Podman set up a pod's network namespace: a non-root app may serve on 80.
    netns.run_in(
        ns, ["sysctl", "-qw", f"net.ipv4.conf.{names.POD_IFNAME}.arp_notify=1",
             "net.ipv4.ip_unprivileged_port_start=0"],
    )  # fmt: skip
    netns.ip(ns, "link", "set", names.POD_IFNAME, "up")
    netns.ip(ns, "route", "add", "default", "via", network.gateway)
    return ns


def unwire(man: manifest.Manifest, mesh_id: str, namespace: str, name: str, ns: str) -> None:
    """Delete the pod's namespace (its veth goes with it) and its /etc/netns files."""
    netns.delete(ns)
    shutil.rmtree(names.etc_netns_dir(ns), ignore_errors=True)
    man.forget_netns(ns)
    man.forget_veth(names.node_netns(mesh_id), names.pod_host_ifname(names.pod_id(namespace, name)))
