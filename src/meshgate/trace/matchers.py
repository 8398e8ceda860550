"""Envoy's matching rules, pure: strings, headers, query parameters, domains and routes.

Rules:
- Virtual hosts: Envoy's order (route config ``virtual_hosts``), exact domain first, then
  the longest suffix wildcard ``*.foo.com`` / ``*foo.com``, then the longest prefix wildcard
  ``foo.*``, then ``*``; a wildcard never matches the empty string. Domains compare
  case-insensitively. With ``ignore_port_in_host_matching`` the port is cut from the Host
  first (Istio sets it); else ``host:port`` must be listed, as Istio lists both forms.
- Routes: first match wins, in order; a route's prefix/path/safe_regex/path_separated_prefix
  is tested on the path without its query (case-sensitive unless ``case_sensitive`` is
  false), then every header matcher and every query parameter matcher must match.
- Regexes are RE2 in Envoy; Python's ``re.fullmatch`` agrees on the patterns Istio users
  write (no backreferences are accepted by validation).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl


def string_match(m: Any, value: str | None) -> bool:
    """envoy.type.matcher.v3.StringMatcher on ``value`` (None: absent, never matches)."""
    if value is None:
        return False
    kind = m.WhichOneof("match_pattern")
    if m.ignore_case and kind in ("exact", "prefix", "suffix", "contains"):
        value, pattern = value.lower(), str(getattr(m, kind)).lower()
    else:
        pattern = str(getattr(m, kind)) if kind != "safe_regex" else ""
    if kind == "exact":
        return value == pattern
    if kind == "prefix":
        return value.startswith(pattern)
    if kind == "suffix":
        return value.endswith(pattern)
    if kind == "contains":
        return pattern in value
    if kind == "safe_regex":
        return re.fullmatch(m.safe_regex.regex, value) is not None
    return False


def header_match(h: Any, headers: Mapping[str, str]) -> bool:
    """envoy.config.route.v3.HeaderMatcher on lower-cased request headers."""
    value = headers.get(h.name.lower())
    kind = h.WhichOneof("header_match_specifier")
    if kind == "present_match":
        ok = (value is not None) == h.present_match
    elif value is None:
        ok = False
    elif kind == "string_match":
        ok = string_match(h.string_match, value)
    elif kind == "exact_match":
        ok = value == h.exact_match
    elif kind == "prefix_match":
        ok = value.startswith(h.prefix_match)
    elif kind == "suffix_match":
        ok = value.endswith(h.suffix_match)
    elif kind == "contains_match":
        ok = h.contains_match in value
    elif kind == "safe_regex_match":
        ok = re.fullmatch(h.safe_regex_match.regex, value) is not None
    elif kind == "range_match":
        try:
            n = int(value)
        except ValueError:
            ok = False
        else:
            ok = h.range_match.start <= n < h.range_match.end
    else:
        ok = True  # no specifier: presence
    if value is None and getattr(h, "treat_missing_header_as_empty", False):
        ok = string_match(h.string_match, "") if kind == "string_match" else ok
    return bool(ok != h.invert_match)


def query_match(q: Any, query: Mapping[str, str]) -> bool:
    value = query.get(q.name)
    kind = q.WhichOneof("query_parameter_match_specifier")
    if kind == "present_match":
        return bool((value is not None) == q.present_match)
    if kind == "string_match":
        return string_match(q.string_match, value)
    return value is not None


def split_path(path: str) -> tuple[str, dict[str, str]]:
    """(path without query, query parameters: the first value of each name)."""
    bare, _, raw = path.partition("?")
    query: dict[str, str] = {}
    for k, v in parse_qsl(raw, keep_blank_values=True):
        query.setdefault(k, v)
    return bare or "/", query


def route_matches(match: Any, path: str, headers: Mapping[str, str]) -> bool:
    """envoy.config.route.v3.RouteMatch on ``path`` (with its query) and headers."""
    bare, query = split_path(path)
    sensitive = not match.HasField("case_sensitive") or match.case_sensitive.value
    test = bare if sensitive else bare.lower()
    kind = match.WhichOneof("path_specifier")
    if kind == "prefix":
        ok = test.startswith(match.prefix if sensitive else match.prefix.lower())
    elif kind == "path":
        ok = test == (match.path if sensitive else match.path.lower())
    elif kind == "safe_regex":
        ok = re.fullmatch(match.safe_regex.regex, bare) is not None
    elif kind == "path_separated_prefix":
        p = match.path_separated_prefix
        ok = test == p or test.startswith(p + "/")
    else:
        ok = True
    if not ok:
        return False
    if not all(header_match(h, headers) for h in match.headers):
        return False
    return all(query_match(q, query) for q in match.query_parameters)


def strip_port(host: str) -> str:
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end > 0 else host
    name, colon, port = host.rpartition(":")
    return name if colon and port.isdigit() else host


def domain_rank(domain: str, host: str) -> tuple[int, int] | None:
    """How well ``domain`` matches ``host`` (higher wins), None when it does not.
    Exact (3), suffix wildcard (2), prefix wildcard (1), ``*`` (0); then wildcard length."""
    d, h = domain.lower(), host.lower()
    if d == "*":
        return (0, 0)
    if d.startswith("*"):
        suffix = d[1:]
        return (2, len(suffix)) if len(h) > len(suffix) and h.endswith(suffix) else None
    if d.endswith("*"):
        prefix = d[:-1]
        return (1, len(prefix)) if len(h) > len(prefix) and h.startswith(prefix) else None
    return (3, 0) if d == h else None


def pick_virtual_host(vhosts: Sequence[Any], host: str, ignore_port: bool) -> Any | None:
    """The virtual host Envoy picks for ``host`` (a Host/:authority header)."""
    wanted = strip_port(host) if ignore_port else host
    best: tuple[tuple[int, int], Any] | None = None
    for vh in vhosts:
        for domain in vh.domains:
            rank = domain_rank(domain, wanted)
            if rank is not None and (best is None or rank > best[0]):
                best = (rank, vh)
    return None if best is None else best[1]


def server_name_rank(names: Sequence[str], sni: str | None) -> int | None:
    """A filter chain's ``server_names`` against an SNI: exact (2), ``*.x`` (1), none
    listed (0); None when names are listed and none matches."""
    if not names:
        return 0
    if not sni:
        return None
    s = sni.lower()
    if s in (n.lower() for n in names):
        return 2
    for n in names:
        if n.startswith("*.") and s.endswith(n[1:].lower()):
            return 1
    return None
