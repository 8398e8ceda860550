"""Envoy RBAC (``envoy.config.rbac.v3``) evaluated for one request, as the RBAC filter does.

Rules:
- A policy matches when one of its permissions and one of its principals match.
- ``rules.action`` ALLOW: the request passes only if some policy matches (Envoy: no match
  -> 403, HTTP; the connection closed, TCP); DENY: it is refused when one matches; LOG
  never refuses. A filter without ``rules`` lets everything through.
- Policies are looked at in name order (Envoy's map is ordered by key): the first that
  matches is the one named, as Envoy names it in ``rbac_access_denied_matched_policy[...]``.
- Principals need the peer's mTLS identity for ``authenticated``; without mTLS nothing is
  authenticated and such a principal does not match. Dynamic metadata matchers
  (``experimental.envoy.filters...``) cannot be known before the request runs: they count
  as not matching, and the walk says so (``unknown`` in the result).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from meshgate.trace.matchers import header_match, split_path, string_match

ALLOW, DENY, LOG = 0, 1, 2


@dataclass(frozen=True)
class Peer:
    """What the RBAC filter knows of a request: peer, identity, request attributes."""

    source_ip: str
    principal: str | None  # SPIFFE id without "spiffe://", None without mTLS
    headers: Mapping[str, str]  # lower-case names, with :method, :authority, :path
    destination_ip: str = ""
    destination_port: int = 0
    sni: str = ""


@dataclass
class Decision:
    allowed: bool
    action: str  # ALLOW | DENY | LOG | NONE
    policy: str | None  # the policy that matched (or None)
    unknown: list[str] = field(default_factory=list)  # attributes that could not be known


def _cidr(r: Any, ip: str) -> bool:
    try:
        addr = ipaddress.ip_address(ip)
        bits = r.prefix_len.value if r.HasField("prefix_len") else addr.max_prefixlen
        return addr in ipaddress.ip_network(f"{r.address_prefix}/{bits}", strict=False)
    except ValueError:
        return False


def principal_matches(p: Any, peer: Peer, unknown: list[str]) -> bool:
    kind = p.WhichOneof("identifier")
    if kind == "any":
        return bool(p.any)
    if kind == "and_ids":
        return all(principal_matches(x, peer, unknown) for x in p.and_ids.ids)
    if kind == "or_ids":
        return any(principal_matches(x, peer, unknown) for x in p.or_ids.ids)
    if kind == "not_id":
        return not principal_matches(p.not_id, peer, unknown)
    if kind == "authenticated":
        if peer.principal is None:
            return False
        if not p.authenticated.HasField("principal_name"):
            return True
        return string_match(p.authenticated.principal_name, "spiffe://" + peer.principal)
    if kind in ("direct_remote_ip", "remote_ip", "source_ip"):
        return _cidr(getattr(p, kind), peer.source_ip)
    if kind == "header":
        return header_match(p.header, peer.headers)
    if kind == "url_path":
        return string_match(p.url_path.path, split_path(peer.headers.get(":path", "/"))[0])
    unknown.append(f"principal {kind}")
    return False


def permission_matches(p: Any, peer: Peer, unknown: list[str]) -> bool:
    kind = p.WhichOneof("rule")
    if kind == "any":
        return bool(p.any)
    if kind == "and_rules":
        return all(permission_matches(x, peer, unknown) for x in p.and_rules.rules)
    if kind == "or_rules":
        return any(permission_matches(x, peer, unknown) for x in p.or_rules.rules)
    if kind == "not_rule":
        return not permission_matches(p.not_rule, peer, unknown)
    if kind == "header":
        return header_match(p.header, peer.headers)
    if kind == "url_path":
        return string_match(p.url_path.path, split_path(peer.headers.get(":path", "/"))[0])
    if kind == "destination_port":
        return int(p.destination_port) == peer.destination_port
    if kind == "destination_ip":
        return _cidr(p.destination_ip, peer.destination_ip)
    if kind == "requested_server_name":
        return string_match(p.requested_server_name, peer.sni)
    unknown.append(f"permission {kind}")
    return False


def evaluate(rbac: Any, peer: Peer) -> Decision:
    """One RBAC filter's decision (its ``rules``; shadow rules never refuse)."""
    if not rbac.HasField("rules"):
        return Decision(True, "NONE", None)
    rules = rbac.rules
    unknown: list[str] = []
    matched = None
    for name in sorted(rules.policies):
        policy = rules.policies[name]
        if any(permission_matches(x, peer, unknown) for x in policy.permissions) and any(
            principal_matches(x, peer, unknown) for x in policy.principals
        ):
            matched = name
            break
    if rules.action == DENY:
        return Decision(matched is None, "DENY", matched, unknown)
    if rules.action == LOG:
        return Decision(True, "LOG", matched, unknown)
    return Decision(matched is not None, "ALLOW", matched, unknown)
