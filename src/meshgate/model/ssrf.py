"""The addresses a gateway must not be turned against: the SSRF guard's ranges (pure data).

Rules:
- One table, ``GUARDED``, says which destination ranges a gateway proxy may not open a
  connection to unless a rule allows that address explicitly, and names each range's
  class in words; the node rules (``runtime.ssrfguard``) and the words in the gateway's log
  (``translate.ssrf``) both come from it, so they never disagree.
- The ranges: loopback and "this host" (0.0.0.0/8 reaches the gateway itself), link-local
  (169.254.0.0/16, where clouds serve instance metadata at 169.254.169.254), the mesh's
  pod network (10.34.0.0/16, the node's bridge 10.34.0.1 included; with the other nodes'
  ranges and links, 10.32.0.0/11), its service network
  (10.96.0.0/16), the node's link to the outside world (203.0.113.0/30), and IPv6 loopback
  and link-local. More specific entries come first: ``classify`` takes the first match.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from meshgate.runtime import names

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class GuardedRange:
    cidr: str
    what: str  # completes "upstream 1.2.3.4:80 is ..."

    @property
    def network(self) -> Network:
        return ipaddress.ip_network(self.cidr)


_NODE_LINK = ipaddress.ip_network(f"{names.NODE_LINK_IP}/{names.LINK_PREFIX_LEN}", strict=False)

GUARDED: tuple[GuardedRange, ...] = (
    GuardedRange("127.0.0.0/8", "loopback"),
    GuardedRange("0.0.0.0/8", "this host (0.0.0.0/8)"),
    GuardedRange("169.254.0.0/16", "link-local"),
    GuardedRange(f"{names.BRIDGE_IP}/32", "the node"),
    GuardedRange(names.POD_NETWORK, "in the mesh's pod network"),
    # Every node's pod range and the links between nodes (joined nodes: docs/nodes.md).
    GuardedRange(names.NODES_NETWORK, "in the mesh's pod network"),
    GuardedRange("10.96.0.0/16", "in the mesh's service network"),
    GuardedRange(str(_NODE_LINK), "the node"),
    GuardedRange("::1/128", "loopback"),
    GuardedRange("fe80::/10", "link-local"),
)
GENERIC = "an internal address"


def classify(address: str) -> GuardedRange | None:
    """The guarded range ``address`` (an IP) falls in, or None."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    for r in GUARDED:
        if ip.version == r.network.version and ip in r.network:
            return r
    return None


def host_prefixes(cidr: str) -> list[str]:
    """Text prefixes of ``ip:port`` (IPv6: ``[ip]:port``) that match exactly the addresses
    of ``cidr``, as Envoy prints an upstream host: what a log-time string test can check."""
    net = ipaddress.ip_network(cidr)
    if net.version == 4:
        octets = str(net.network_address).split(".")
        if net.prefixlen % 8 == 0:
            keep = net.prefixlen // 8
            if keep == 4:
                return [f"{net.network_address}:"]
            return [".".join(octets[:keep]) + "." if keep else ""]
        # Not on an octet boundary: each value the partial octet takes (203.0.113.0/30 ->
        # four addresses; 10.32.0.0/11 -> 10.32. .. 10.63.).
        keep = net.prefixlen // 8
        base = int(octets[keep])
        values = range(base, base + (1 << (8 - net.prefixlen % 8)))
        end = ":" if keep == 3 else "."
        return [".".join([*octets[:keep], str(v)]) + end for v in values]
    if net.prefixlen == 128:
        return [f"[{net.network_address.compressed}]:"]
    # IPv6: whole hex digits of the first group (fe80::/10 -> [fe8, [fe9, [fea, [feb).
    if net.prefixlen > 16:
        raise ValueError(f"{cidr}: only /128 or a prefix within the first group")
    first = int(net.network_address) >> 112
    digits = (net.prefixlen + 3) // 4
    step = 1 << (16 - net.prefixlen)
    out = set()
    for value in range(first, first + step):
        out.add("[" + f"{value:04x}"[:digits])
    return sorted(out)


# The connect errors the guard's reject type gives the proxy (IPv4: ICMP protocol
# unreachable; IPv6: administratively prohibited). No real server causes them for TCP, so
# the log can tell the guard's refusal from a server that is down.
REFUSED_ERRORS = ("Protocol not available", "Permission denied")
