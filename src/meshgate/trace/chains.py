"""Which listener and which filter chain Envoy picks for a connection.

Rules:
- Listener: the one whose address is exactly the original destination ``ip:port``, else
  ``0.0.0.0:port`` (a sidecar's ``virtualOutbound`` hands connections over this way, a
  gateway binds its ports so); else None (the sidecar's ``virtualOutbound`` keeps it).
- Filter chain: Envoy's ``filter_chain_match`` order, criterion by criterion: destination
  port, destination IP (longest prefix), server name (exact, then the longest ``*.``
  wildcard), transport protocol, application protocols. At each step the chains that name
  a matching value win over those that leave it unset; chains that name only other values
  drop out. No chain left: the listener's ``default_filter_chain`` (None if it has none:
  Envoy closes the connection).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from meshgate.trace.matchers import server_name_rank


@dataclass(frozen=True)
class Connection:
    """What Envoy knows of a new downstream connection when it picks a chain."""

    ip: str
    port: int
    sni: str | None = None
    tls: bool = False
    alpn: tuple[str, ...] = ()


def listener_address(listener: Any) -> tuple[str, int] | None:
    sock = listener.address.socket_address
    if not listener.HasField("address") or not sock.address:
        return None
    return sock.address, int(sock.port_value)


def pick_listener(listeners: Sequence[Any], ip: str, port: int) -> Any | None:
    exact = wildcard = None
    for listener in listeners:
        addr = listener_address(listener)
        if addr is None or addr[1] != port:
            continue
        if addr[0] == ip:
            exact = listener
        elif addr[0] in ("0.0.0.0", "::"):
            wildcard = wildcard or listener
    return exact or wildcard


def by_name(listeners: Sequence[Any], name: str) -> Any | None:
    return next((x for x in listeners if x.name == name), None)


Rank = Callable[[Any, Connection], "int | None"]


def _port(m: Any, c: Connection) -> int | None:
    if not m.HasField("destination_port"):
        return -1
    return 0 if m.destination_port.value == c.port else None


def _ip(m: Any, c: Connection) -> int | None:
    if not m.prefix_ranges:
        return -1
    try:
        addr = ipaddress.ip_address(c.ip)
    except ValueError:
        return None
    best: int | None = None
    for r in m.prefix_ranges:
        bits = r.prefix_len.value if r.HasField("prefix_len") else addr.max_prefixlen
        try:
            net = ipaddress.ip_network(f"{r.address_prefix}/{bits}", strict=False)
        except ValueError:
            continue
        if addr in net and (best is None or bits > best):
            best = bits
    return best


def _sni(m: Any, c: Connection) -> int | None:
    rank = server_name_rank(list(m.server_names), c.sni)
    if rank is None:
        return None
    return -1 if rank == 0 else rank


def _transport(m: Any, c: Connection) -> int | None:
    if not m.transport_protocol:
        return -1
    return 0 if m.transport_protocol == ("tls" if c.tls else "raw_buffer") else None


def _alpn(m: Any, c: Connection) -> int | None:
    if not m.application_protocols:
        return -1
    return 0 if set(m.application_protocols) & set(c.alpn) else None


CRITERIA: tuple[Rank, ...] = (_port, _ip, _sni, _transport, _alpn)


def pick_chain(listener: Any, conn: Connection) -> Any | None:
    """The filter chain Envoy uses for ``conn`` on ``listener`` (None: it closes it)."""
    candidates = list(listener.filter_chains)
    for rank in CRITERIA:
        scored = [(rank(fc.filter_chain_match, conn), fc) for fc in candidates]
        specific = [(r, fc) for r, fc in scored if r is not None and r >= 0]
        if specific:
            top = max(r for r, _ in specific)
            candidates = [fc for r, fc in specific if r == top]
        else:
            candidates = [fc for r, fc in scored if r == -1]
        if not candidates:
            break
    if candidates:
        return candidates[0]
    return listener.default_filter_chain if listener.HasField("default_filter_chain") else None
