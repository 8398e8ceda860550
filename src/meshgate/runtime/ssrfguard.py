"""The SSRF guard: a gateway proxy may not open connections to the mesh's own insides.

A gateway sends traffic wherever its routes say, and a route may name a host by DNS: a name
that later resolves to 127.0.0.1, to the cloud metadata address 169.254.169.254 or to a pod
would turn the gateway into a way in. Config-time checks cannot see that (the answer
changes after the config is accepted), so the guard is enforced when the proxy connects:
iptables rules in the gateway pod's own network namespace, where only its proxy runs.

Rules:
- ``render`` is pure: iptables-restore (and ip6tables-restore) input for the pod's
  ``filter`` table, replacing only our chains: ``MESHGATE-SSRF`` (jumped to first from
  ``OUTPUT``) picks new connections of the proxy, told by the same match that exempts it
  from capture (its cgroup, else uid 1337: ``capture.exemption``), so ``proxy-config`` and
  ``meshgate exec`` in the pod still reach the admin port; ``MESHGATE-SSRF-PROXY`` judges
  them. Connections already open are left alone: the guard is about where a new
  connection goes.
- Judged: the node's DNS (10.34.0.1:53 on the first node, a joined node's bridge address
  on it; UDP and TCP) passes; then each explicitly allowed
  destination (an address and TCP port a user configured: see ``server.ssrfguard``);
  then every range of ``model.ssrf.GUARDED`` is refused; anything else (the world) passes.
- Refusals carry a reject type nothing else produces for TCP, so the proxy's log can tell
  a guard refusal from a server that is down: ICMP protocol-unreachable (the connect fails
  with ENOPROTOOPT, "Protocol not available"), for IPv6 administratively prohibited
  (EACCES, "Permission denied"). Each rule's comment says which range it guards.
- MeshConfig ``gatewaySsrfGuard: false`` turns the guard off: the chains stay, empty.
- Output is deterministic, so an unchanged mesh renders the same text; ``apply`` is
  idempotent and touches no chain but ours.
"""

from __future__ import annotations

import ipaddress
import logging
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from meshgate.model import ssrf
from meshgate.runtime import names, netns

log = logging.getLogger(__name__)

CHAIN = "MESHGATE-SSRF"
PROXY_CHAIN = "MESHGATE-SSRF-PROXY"
REJECT4 = "--reject-with icmp-proto-unreachable"
REJECT6 = "--reject-with icmp6-adm-prohibited"
# What the proxy's connect fails with under REJECT4 / REJECT6 (strerror), for the log.
DNS_PORT = 53


@dataclass(frozen=True, order=True)
class Allowed:
    """A destination a user configured on purpose: the guard lets the proxy reach it."""

    ip: str
    port: int
    why: str = ""


def _comment(text: str) -> str:
    return '-m comment --comment "' + text.replace('"', "'")[:250] + '"'


def _table(
    version: int, proxy_match: str, allowed: Sequence[Allowed], enabled: bool, dns_ip: str
) -> str:
    lines = ["*filter", f":{CHAIN} - [0:0]", f":{PROXY_CHAIN} - [0:0]"]
    if not enabled:  # our chains stay, empty: turning the guard off removes every rule
        return "\n".join([*lines, "COMMIT", ""])
    lines += [
        f"-A {CHAIN} -m conntrack ! --ctstate NEW -j RETURN",
        f"-A {CHAIN} {proxy_match} -j {PROXY_CHAIN}",
    ]
    if version == 4:
        dns = _comment("the node's DNS")
        lines += [
            f"-A {PROXY_CHAIN} -d {dns_ip}/32 -p {proto} -m {proto} --dport {DNS_PORT}"
            f" {dns} -j RETURN"
            for proto in ("udp", "tcp")
        ]
    for a in allowed:
        ip = ipaddress.ip_address(a.ip)
        if ip.version != version or ssrf.classify(a.ip) is None:
            continue  # an address outside every guarded range needs no exception
        note = _comment(f"allowed: {a.why}" if a.why else "allowed")
        lines.append(
            f"-A {PROXY_CHAIN} -d {ip}/{ip.max_prefixlen} -p tcp -m tcp --dport {a.port}"
            f" {note} -j RETURN"
        )
    reject = REJECT4 if version == 4 else REJECT6
    for r in ssrf.GUARDED:
        if r.network.version == version:
            lines.append(
                f"-A {PROXY_CHAIN} -d {r.cidr} {_comment(f'SSRF guard: {r.what}')}"
                f" -j REJECT {reject}"
            )
    lines += ["COMMIT", ""]
    return "\n".join(lines)


def render(
    proxy_match: str,
    allowed: Iterable[Allowed],
    *,
    enabled: bool = True,
    dns_ip: str = names.BRIDGE_IP,
) -> tuple[str, str]:
    """(IPv4, IPv6) restore input for a gateway pod; ``proxy_match`` selects its proxy's
    packets (an iptables match, e.g. ``-m cgroup --path /mg-abc123-proxies``). Disabled
    (MeshConfig ``gatewaySsrfGuard: false``): our chains, empty. ``dns_ip``: the pod's
    node's DNS (a joined node's is its own bridge address)."""
    ordered = sorted(set(allowed))
    return (
        _table(4, proxy_match, ordered, enabled, dns_ip),
        _table(6, proxy_match, ordered, enabled, dns_ip),
    )


def _hook(prefix: list[str], tool: str) -> None:
    check = [*prefix, tool, "-t", "filter", "-C", "OUTPUT", "-j", CHAIN]
    if subprocess.run(check, capture_output=True, check=False).returncode != 0:
        netns.run([*prefix, tool, "-t", "filter", "-I", "OUTPUT", "1", "-j", CHAIN])


def apply(pod_netns: str, texts: tuple[str, str]) -> None:
    """Install ``render``'s output in a gateway pod's namespace (idempotent)."""
    prefix = netns.exec_prefix(pod_netns)
    v4, v6 = texts
    netns.run([*prefix, "iptables-restore", "--noflush"], input_text=v4)
    _hook(prefix, "iptables")
    if shutil.which("ip6tables-restore") is None:
        log.warning("no ip6tables-restore: the SSRF guard covers IPv4 only")
        return
    netns.run([*prefix, "ip6tables-restore", "--noflush"], input_text=v6)
    _hook(prefix, "ip6tables")
