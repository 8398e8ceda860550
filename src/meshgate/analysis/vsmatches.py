"""VirtualService rules that can never match (IST0130) and matches that never apply (IST0131).

Rules of this module (Istio's VirtualService validation warnings, as analyze reports them):
- Rules are read in order. A rule without ``match`` catches everything, so a second such
  rule, or any matched rule after one, is unreachable.
- A match identical to an earlier one (its ``name`` aside) is ineffective; a rule all of
  whose matches are ineffective is unreachable.
- HTTP prefix matches are also checked for cover: an earlier URI prefix that is a prefix of
  a later one, on the same port, with method/authority/header/query/withoutHeaders
  conditions that are the same or prefixes of the later ones, makes the later match
  ineffective. An unset method counts as ``exact: GET`` there, as in Istio.
- Rules are named ``"name"`` when named, else ``#index``; matches likewise.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from meshgate.analysis import messages as msg
from meshgate.analysis.context import AnalysisContext, Entry
from meshgate.api.kinds.istio_networking import HTTPMatchRequest, StringMatch, VirtualService

Unreachable = Callable[[str, str, int], None]
Ineffective = Callable[[str, str, str, int], None]


def _rule_name(route: Any, index: int) -> str:
    name = getattr(route, "name", None)
    return json.dumps(name) if name else f"#{index}"


def _match_name(match: Any, index: int) -> str:
    name = getattr(match, "name", None) if isinstance(match, HTTPMatchRequest) else None
    return json.dumps(name) if name else f"#{index}"


def _as_key(match: Any) -> str:
    wire = match.to_wire()
    if isinstance(match, HTTPMatchRequest):
        wire.pop("name", None)
    return json.dumps(wire, sort_keys=True)


def _check_rules(
    routes: Sequence[Any], unreachable: Unreachable, ineffective: Ineffective
) -> list[tuple[int, int]]:
    """Exact duplicates; returns the (rule, match) pairs that stayed effective."""
    seen: dict[str, int] = {}
    catch_all = -1
    kept: list[tuple[int, int]] = []
    for rn, route in enumerate(routes):
        matches = list(route.match or [])
        if not matches:
            if catch_all >= 0:
                unreachable(_rule_name(route, rn), "only the last rule can have no matches", rn)
            catch_all = rn
            continue
        duplicates = 0
        for mn, match in enumerate(matches):
            if catch_all >= 0:
                unreachable(_rule_name(route, rn), "route without matches defined before", rn)
                continue
            key = _as_key(match)
            if key in seen:
                dup = seen[key]
                ineffective(
                    _rule_name(route, rn), _match_name(match, mn), _rule_name(routes[dup], dup), rn
                )
                duplicates += 1
                continue
            seen[key] = rn
            kept.append((rn, mn))
        if duplicates == len(matches):
            unreachable(_rule_name(route, rn), "all matches used by prior rules", rn)
    return kept


@dataclass(frozen=True)
class _PrefixMatch:
    rule: str
    match: str
    prefix: str
    port: int | None
    method: str
    authority: str
    headers: dict[str, str]
    query: dict[str, str]
    without: dict[str, str]
    index: int


def _exact_or_prefix(sm: StringMatch | None) -> str:
    if sm is None:
        return ""
    if sm.exact:
        return "exact:" + sm.exact
    if sm.prefix:
        return "prefix:" + sm.prefix
    return ""


def _prefix_match(route: Any, rn: int, match: HTTPMatchRequest, mn: int) -> _PrefixMatch | None:
    if match.uri is None or not match.uri.prefix:
        return None
    return _PrefixMatch(
        _rule_name(route, rn),
        _match_name(match, mn),
        match.uri.prefix,
        match.port,
        _exact_or_prefix(match.method) or "exact:GET",
        _exact_or_prefix(match.authority),
        {k: _exact_or_prefix(v) for k, v in (match.headers or {}).items()},
        {k: _exact_or_prefix(v) for k, v in (match.query_params or {}).items()},
        {k: _exact_or_prefix(v) for k, v in (match.without_headers or {}).items()},
        rn,
    )


def _same_or_prefix(a: str, b: str) -> bool:
    return a == b or a.startswith(b)


def _maps_cover(a: dict[str, str], b: dict[str, str]) -> bool:
    if len(a) != len(b):
        return False
    return all(k in b and _same_or_prefix(v, b[k]) for k, v in a.items())


def _covers(a: _PrefixMatch, b: _PrefixMatch) -> bool:
    """Does the earlier match ``a`` take every request the later ``b`` would?"""
    return (
        b.prefix.startswith(a.prefix)
        and a.port == b.port
        and _same_or_prefix(a.method, b.method)
        and _same_or_prefix(a.authority, b.authority)
        and _maps_cover(a.headers, b.headers)
        and _maps_cover(a.query, b.query)
        and _maps_cover(a.without, b.without)
    )


def unreachable_rules(ctx: AnalysisContext) -> None:
    """IST0130 and IST0131 for the http, tcp and tls rules of every VirtualService."""
    for vs in ctx.of(VirtualService):
        _analyze(ctx, vs)


def _analyze(ctx: AnalysisContext, vs: Entry[VirtualService]) -> None:
    spec = vs.resource.spec
    for section in ("http", "tcp", "tls"):
        routes = list(getattr(spec, section) or [])

        def unreachable(rule: str, reason: str, rn: int, section: str = section) -> None:
            ctx.report(vs, msg.VS_UNREACHABLE_RULE, rule, reason, path=("spec", section, rn))

        def ineffective(rule: str, match: str, dup: str, rn: int, section: str = section) -> None:
            path = ("spec", section, rn, "match")
            ctx.report(vs, msg.VS_INEFFECTIVE_MATCH, rule, match, dup, path=path)

        kept = _check_rules(routes, unreachable, ineffective)
        if section != "http":
            continue
        prefixes = [
            p
            for rn, mn in kept
            if (p := _prefix_match(routes[rn], rn, routes[rn].match[mn], mn)) is not None
        ]
        for i, earlier in enumerate(prefixes):
            for later in prefixes[i + 1 :]:
                if later.prefix == earlier.prefix or not _covers(earlier, later):
                    continue
                ineffective(
                    later.rule,
                    f"{later.match} of prefix {later.prefix}",
                    f"{earlier.match} of prefix {earlier.prefix} on {earlier.rule}",
                    later.index,
                )
