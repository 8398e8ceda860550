"""One AuthorizationPolicy rule -> one Envoy RBAC ``Policy`` (Istio's authz model/generator).

Rules of this module (the shapes are Istio's, so `proxy-config` output reads like Istio's):
- A rule is ``Policy(permissions, principals)``: one principal per ``from`` entry (one when
  there is none) and one permission per ``to`` entry (likewise). Each is an ``and`` of its
  attributes, ``any`` when it has none. ``when`` conditions are added to every principal or
  permission, after the ``from``/``to`` fields, by key: source keys and request headers are
  principal attributes, destination keys and ``connection.sni`` are permission attributes.
- Within an attribute, ``values`` is an ``or`` of one matcher per value and ``notValues`` a
  ``not`` of such an ``or``. Field order: principals, requestPrincipals, serviceAccounts,
  namespaces, remoteIpBlocks, ipBlocks; hosts, methods, paths, ports; then ``when``.
- Strings follow Istio's ``*`` rule: ``*`` alone is "present / non-empty" (regex ``.+``),
  ``*x`` a suffix, ``x*`` a prefix, anything else exact.
  - principals, ``source.principal``: ``authenticated.principal_name`` with ``spiffe://``
    before the value (a suffix form becomes the regex ``spiffe://.*<x>``); a principal in
    trust domain ``cluster.local`` means the mesh's own trust domain.
  - namespaces, ``source.namespace``: principal name regex ``.*/ns/<ns>/.*`` (``*`` -> ``.*``).
  - serviceAccounts, ``source.serviceAccount``: regex
    ``spiffe://.+/ns/<ns>/(.+/|)sa/<sa>(/.+)?``, the namespace defaulting to the policy's.
  - ipBlocks, ``source.ip``: ``direct_remote_ip``; remoteIpBlocks, ``remote.ip``:
    ``remote_ip`` (x-forwarded-for aware); ``destination.ip``: ``destination_ip``. A bare
    address is a /32 (/128).
  - hosts: header ``:authority``, case-insensitive, exactly as written: Istio matches no
    port for you, ``example.com`` does not match ``example.com:8080`` (write
    ``example.com:*`` or ``example.com*`` for that).
  - methods: header ``:method``; ``request.headers[name]``: header ``name`` (case-sensitive
    values); paths: ``url_path`` (query excluded), or Envoy's ``uri_template`` when the path
    uses ``{*}``/``{**}``.
  - ports, ``destination.port``: ``destination_port``; ``connection.sni``:
    ``requested_server_name``; ``experimental.envoy.filters.<f>[<key>]``: dynamic metadata.
- JWT attributes (requestPrincipals, ``request.auth.*``): meshgate validates no JWT (it has
  no RequestAuthentication), so, as on an Istio workload without one, their values never
  match and their notValues always do.
- On a TCP filter chain hosts, methods, paths, request headers and JWT attributes do not
  exist (HTTP only). Istio's rule, which fails toward denying: an ALLOW rule using one is
  dropped (it allows nothing); in a DENY/AUDIT rule that attribute is left out, so the rule
  matches more (a DENY with only HTTP attributes denies every connection; validation warns,
  MG1080). A value that cannot be expressed (a bad CIDR or port) is handled the same way.
- A ``when`` key Istio does not know makes the rule invalid; it is skipped (validation
  refuses such policies before they are stored).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from envoy.config.core.v3 import address_pb2, extension_pb2
from envoy.config.rbac.v3 import rbac_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.path.match.uri_template.v3 import uri_template_match_pb2
from envoy.type.matcher.v3 import metadata_pb2, path_pb2, regex_pb2, string_pb2, value_pb2

from meshgate.model.fields import get, get_list, get_str
from meshgate.translate.pb import pack, uint32

Action = Literal["ALLOW", "DENY", "AUDIT"]
Principal = rbac_pb2.Principal
Permission = rbac_pb2.Permission

SPIFFE = "spiffe://"
LOCAL_TRUST_DOMAIN = "cluster.local"
_GO_META = re.compile(r"([\\.+*?()|\[\]{}^$])")  # the characters Go's regexp.QuoteMeta escapes


class Unsupported(ValueError):
    """A value that has no Envoy form here: HTTP-only on TCP, or a malformed value."""


def quote_meta(text: str) -> str:
    # Go's QuoteMeta, not re.escape: the regexes then read exactly as Istio writes them.
    return _GO_META.sub(r"\\\1", text)


# ---- matchers -------------------------------------------------------------------------------


def regex(pattern: str) -> Any:
    return string_pb2.StringMatcher(safe_regex=regex_pb2.RegexMatcher(regex=pattern))


def string(value: str, prefix: str = "", *, ignore_case: bool = False) -> Any:
    """Istio's ``*`` rule for one string, with ``prefix`` put before the value."""
    if value == "*":
        return regex(".+")
    if value.startswith("*"):
        if prefix:
            return regex(prefix + ".*" + quote_meta(value[1:]))
        return string_pb2.StringMatcher(suffix=value[1:], ignore_case=ignore_case)
    if value.endswith("*"):
        return string_pb2.StringMatcher(prefix=prefix + value[:-1], ignore_case=ignore_case)
    return string_pb2.StringMatcher(exact=prefix + value, ignore_case=ignore_case)


def header(name: str, value: str, *, ignore_case: bool = False) -> Any:
    if value == "*":
        return rc.HeaderMatcher(name=name, present_match=True)
    return rc.HeaderMatcher(name=name, string_match=string(value, ignore_case=ignore_case))


def cidr(value: str) -> Any:
    try:
        if "/" in value:
            iface = ipaddress.ip_interface(value)
            address, bits = iface.ip, iface.network.prefixlen
        else:
            address = ipaddress.ip_address(value)
            bits = address.max_prefixlen
    except ValueError as err:
        raise Unsupported(f"bad IP address or CIDR {value!r}") from err
    return address_pb2.CidrRange(address_prefix=str(address), prefix_len=uint32(bits))


def port(value: str) -> int:
    if not (value.isascii() and value.isdigit()) or int(value) > 65535:
        raise Unsupported(f"bad port {value!r}")
    return int(value)


def bracketed(key: str, prefix: str) -> str:
    """``request.headers[x-user]`` -> ``x-user``."""
    rest = key[len(prefix) :]
    if not (rest.startswith("[") and rest.endswith("]")) or len(rest) < 3:
        raise Unsupported(f"expecting {prefix}[NAME], found {key!r}")
    return rest[1:-1]


NEVER = Principal(not_id=Principal(any=True))


# ---- attributes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attribute:
    """One attribute of a principal or permission: a key with its values and notValues.

    ``each`` makes one matcher per value (combined with ``or``); ``whole`` one matcher for
    all values at once (Istio's "extended" attributes: JWT and Envoy metadata)."""

    key: str
    values: tuple[str, ...]
    not_values: tuple[str, ...]
    each: Callable[[str, str, bool], Any] | None = None
    whole: Callable[[str, Sequence[str], bool], Any] | None = None


def _http_only(key: str, tcp: bool) -> None:
    if tcp:
        raise Unsupported(f"{key} is HTTP only")


@dataclass(frozen=True)
class Context:
    policy_namespace: str
    trust_domain: str


def _principal_gens(ctx: Context) -> dict[str, Callable[[str, str, bool], Any]]:
    def principal(_key: str, value: str, _tcp: bool) -> Any:
        return authenticated(string(local_trust_domain(value, ctx.trust_domain), SPIFFE))

    def namespace(_key: str, value: str, _tcp: bool) -> Any:
        pattern = ".*".join(quote_meta(part) for part in value.split("*"))
        return authenticated(regex(f".*/ns/{pattern}/.*"))

    def service_account(_key: str, value: str, _tcp: bool) -> Any:
        ns, slash, sa = value.partition("/")
        if not slash:
            ns, sa = ctx.policy_namespace, value
        pattern = f"spiffe://.+/ns/{quote_meta(ns)}/(.+/|)sa/{quote_meta(sa)}(/.+)?"
        return authenticated(regex(pattern))

    def source_ip(_key: str, value: str, _tcp: bool) -> Any:
        return Principal(direct_remote_ip=cidr(value))

    def remote_ip(_key: str, value: str, _tcp: bool) -> Any:
        return Principal(remote_ip=cidr(value))

    def request_header(key: str, value: str, tcp: bool) -> Any:
        _http_only(key, tcp)
        return Principal(header=header(bracketed(key, "request.headers"), value))

    return {
        "source.principal": principal,
        "source.namespace": namespace,
        "source.serviceAccount": service_account,
        "source.ip": source_ip,
        "remote.ip": remote_ip,
        "request.headers": request_header,
    }


def _jwt(key: str, _values: Sequence[str], tcp: bool) -> Any:
    _http_only(key, tcp)
    return NEVER


def _permission_gens() -> dict[str, Callable[[str, str, bool], Any]]:
    def host(key: str, value: str, tcp: bool) -> Any:
        _http_only(key, tcp)
        return Permission(header=header(":authority", value, ignore_case=True))

    def method(key: str, value: str, tcp: bool) -> Any:
        _http_only(key, tcp)
        return Permission(header=header(":method", value))

    def path(key: str, value: str, tcp: bool) -> Any:
        _http_only(key, tcp)
        if "{*}" in value or "{**}" in value:
            template = value.replace("{**}", "**").replace("{*}", "*")
            config = uri_template_match_pb2.UriTemplateMatchConfig(path_template=template)
            return Permission(
                uri_template=extension_pb2.TypedExtensionConfig(
                    name="uri-template", typed_config=pack(config)
                )
            )
        return Permission(url_path=path_pb2.PathMatcher(path=string(value)))

    def destination_port(_key: str, value: str, _tcp: bool) -> Any:
        return Permission(destination_port=port(value))

    def destination_ip(_key: str, value: str, _tcp: bool) -> Any:
        return Permission(destination_ip=cidr(value))

    def sni(_key: str, value: str, _tcp: bool) -> Any:
        return Permission(requested_server_name=string(value))

    return {
        "hosts": host,
        "methods": method,
        "paths": path,
        "destination.port": destination_port,
        "destination.ip": destination_ip,
        "connection.sni": sni,
    }


def _envoy_metadata(key: str, values: Sequence[str], _tcp: bool) -> Any:
    """``experimental.envoy.filters.a.b[c]``: dynamic metadata of filter ``envoy.filters.a.b``
    at key ``c``; a value ``[v]`` matches a list holding ``v``."""
    name, bracket, rest = key.removeprefix("experimental.").partition("[")
    if not bracket or not rest.endswith("]"):
        raise Unsupported(f"invalid key {key!r}")
    matchers = []
    for value in values:
        if value.startswith("[") and value.endswith("]"):
            one = value_pb2.ValueMatcher(string_match=string(value.strip("[]")))
            matchers.append(value_pb2.ValueMatcher(list_match=value_pb2.ListMatcher(one_of=one)))
        else:
            matchers.append(value_pb2.ValueMatcher(string_match=string(value)))
    matched = (
        matchers[0]
        if len(matchers) == 1
        else value_pb2.ValueMatcher(or_match=value_pb2.OrMatcher(value_matchers=matchers))
    )
    segment = metadata_pb2.MetadataMatcher.PathSegment(key=rest[:-1])
    return Permission(
        metadata=metadata_pb2.MetadataMatcher(filter=name, path=[segment], value=matched)
    )


def authenticated(name: Any) -> Any:
    return Principal(authenticated=Principal.Authenticated(principal_name=name))


def local_trust_domain(principal: str, trust_domain: str) -> str:
    """``cluster.local/ns/x/sa/y`` names the mesh's own trust domain, whatever it is."""
    parts = principal.split("/")
    if len(parts) == 5 and parts[0] == LOCAL_TRUST_DOMAIN:
        return "/".join([trust_domain, *parts[1:]])
    return principal


# ---- one rule ---------------------------------------------------------------------------------

_SOURCE_FIELDS = (  # Istio's order in a principal, with the attribute key each one uses
    ("principals", "not_principals", "source.principal"),
    ("request_principals", "not_request_principals", "request.auth.principal"),
    ("service_accounts", "not_service_accounts", "source.serviceAccount"),
    ("namespaces", "not_namespaces", "source.namespace"),
    ("remote_ip_blocks", "not_remote_ip_blocks", "remote.ip"),
    ("ip_blocks", "not_ip_blocks", "source.ip"),
)
_OPERATION_FIELDS = (
    ("hosts", "not_hosts", "hosts"),
    ("methods", "not_methods", "methods"),
    ("paths", "not_paths", "paths"),
    ("ports", "not_ports", "destination.port"),
)
_JWT_KEYS = ("request.auth.principal", "request.auth.audiences", "request.auth.presenter")
_WHEN_PERMISSION_KEYS = ("destination.port", "destination.ip", "connection.sni")


def _strings(obj: Any, name: str) -> tuple[str, ...]:
    return tuple(str(v) for v in get_list(obj, name))


class Compiler:
    """Compiles the rules of one policy for one kind of filter chain and one action."""

    def __init__(self, ctx: Context, action: Action, *, tcp: bool) -> None:
        self.action = action
        self.tcp = tcp
        self.principal_gens = _principal_gens(ctx)
        self.permission_gens = _permission_gens()

    def _principal(self, key: str, values: tuple[str, ...], nots: tuple[str, ...]) -> Attribute:
        if key in _JWT_KEYS or key.startswith("request.auth.claims"):
            return Attribute(key, values, nots, whole=_jwt)
        if key.startswith("request.headers"):
            return Attribute(key, values, nots, each=self.principal_gens["request.headers"])
        return Attribute(key, values, nots, each=self.principal_gens[key])

    def _when(self, cond: Any) -> tuple[Attribute | None, Attribute | None]:
        """(principal attribute, permission attribute) of a condition; ``(None, None)`` for
        a key Istio does not know."""
        key = get_str(cond, "key")
        values, nots = _strings(cond, "values"), _strings(cond, "not_values")
        if key in _WHEN_PERMISSION_KEYS:
            return None, Attribute(key, values, nots, each=self.permission_gens[key])
        if key.startswith("experimental.envoy.filters."):
            return None, Attribute(key, values, nots, whole=_envoy_metadata)
        if (
            key in self.principal_gens
            or key in _JWT_KEYS
            or key.startswith(("request.headers", "request.auth.claims"))
        ):
            return self._principal(key, values, nots), None
        return None, None

    def rule(self, rule: Any) -> Any | None:
        """The RBAC policy of one rule; None when the rule is dropped (see the module rules)."""
        when_principal: list[Attribute] = []
        when_permission: list[Attribute] = []
        for cond in get_list(rule, "when"):
            principal, permission = self._when(cond)
            if principal is None and permission is None:
                return None  # an unknown attribute: Istio skips the whole rule
            if principal is not None:
                when_principal.append(principal)
            if permission is not None:
                when_permission.append(permission)
        principal_sets = []
        # ``from`` is a Python keyword: typed rules hold it as ``from_``, plain dicts as "from".
        for entry in get_list(rule, "from_") or get_list(rule, "from"):
            source = get(entry, "source")
            attrs = [
                self._principal(key, _strings(source, yes), _strings(source, no))
                for yes, no, key in _SOURCE_FIELDS
            ]
            principal_sets.append([a for a in attrs if a.values or a.not_values] + when_principal)
        permission_sets = []
        for entry in get_list(rule, "to"):
            op = get(entry, "operation")
            attrs = [
                Attribute(key, _strings(op, yes), _strings(op, no), each=self.permission_gens[key])
                for yes, no, key in _OPERATION_FIELDS
            ]
            permission_sets.append([a for a in attrs if a.values or a.not_values] + when_permission)
        try:
            principals = [
                self._combine(attrs, Principal, "and_ids", "or_ids", "not_id", "ids")
                for attrs in (principal_sets or [when_principal])
            ]
            permissions = [
                self._combine(attrs, Permission, "and_rules", "or_rules", "not_rule", "rules")
                for attrs in (permission_sets or [when_permission])
            ]
        except Unsupported:
            return None  # ALLOW: a rule that needs what this chain lacks allows nothing
        return rbac_pb2.Policy(permissions=permissions, principals=principals)

    def _made(self, gen: Callable[[str, Any, bool], Any], key: str, value: Any) -> Any | None:
        """One generated matcher; None when it is left out: DENY and AUDIT rules drop what
        they cannot express and so match more, an ALLOW rule is dropped whole (raises)."""
        try:
            return gen(key, value, self.tcp)
        except Unsupported:
            if self.action == "ALLOW":
                raise
            return None

    def _combine(
        self, attrs: list[Attribute], cls: Any, and_: str, or_: str, not_: str, items: str
    ) -> Any:
        """``and`` of the attributes: each an ``or`` of its values and a ``not or`` of its
        notValues (one matcher for all values of a whole-value attribute)."""
        parts: list[Any] = []
        for attr in attrs:
            for values, negate in ((attr.values, False), (attr.not_values, True)):
                if not values:
                    continue
                if attr.whole is not None:
                    made = self._made(attr.whole, attr.key, values)
                else:
                    assert attr.each is not None
                    alternatives = [self._made(attr.each, attr.key, v) for v in values]
                    kept = [a for a in alternatives if a is not None]
                    made = cls(**{or_: cls.Set(**{items: kept})}) if kept else None
                if made is not None:
                    parts.append(cls(**{not_: made}) if negate else made)
        if not parts:
            parts.append(cls(any=True))
        return cls(**{and_: cls.Set(**{items: parts})})
