"""AuthorizationPolicy and RequestAuthentication rules (Istio's ValidateAuthorizationPolicy,
ValidateRequestAuthentication).

Rules of this module:
- ``selector``, ``targetRef`` and ``targetRefs`` are exclusive; a target names a Service,
  ServiceEntry, Gateway or GatewayClass in the policy's own namespace.
- Actions: DENY and CUSTOM need ``rules`` (``rules: [{}]`` matches everything); CUSTOM
  needs ``provider.name`` and cannot match on principals, namespaces, service accounts
  or ``request.auth.*``; ``provider`` only with CUSTOM.
- A rule's ``from``/``to`` lists, when written, are not empty; each source/operation sets
  at least one field; no value is an empty string; serviceAccounts exclude principals and
  namespaces; IPs and CIDRs parse; ports are numbers up to 65535; paths use ``{*}`` and
  ``{**}`` templates correctly.
- A condition has a known key with values or notValues valid for it.
- A DENY rule using only HTTP attributes is warned: it denies all TCP traffic too.
- RequestAuthentication (MG1093): one of selector/targetRef/targetRefs, as for policies;
  each JWT rule has an issuer or a jwksUri, an http(s) jwksUri, no empty audience, header,
  query parameter, cookie or claim name, valid output header names, a positive timeout.
  meshgate keeps it for analysis only: a warning says its proxies do not check JWTs.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from meshgate.api.kinds import istio_security as sec
from meshgate.validation import common as c
from meshgate.validation.findings import Findings, rule

_TARGET_KINDS = frozenset(
    {
        ("", "Service"),
        ("core", "Service"),
        ("networking.istio.io", "ServiceEntry"),
        ("gateway.networking.k8s.io", "Gateway"),
        ("gateway.networking.k8s.io", "GatewayClass"),
    }
)
_PATH_LITERAL = re.compile(r"^[a-zA-Z0-9\-._~%!$&'()+,;:@=]+$")
_SOURCE_FIELDS = (
    "principals", "not_principals", "request_principals", "not_request_principals",
    "namespaces", "not_namespaces", "service_accounts", "not_service_accounts", "ip_blocks",
    "not_ip_blocks", "remote_ip_blocks", "not_remote_ip_blocks",
)  # fmt: skip
_TCP_SOURCE_FIELDS = (
    "principals", "not_principals", "namespaces", "not_namespaces", "service_accounts",
    "not_service_accounts", "ip_blocks", "not_ip_blocks", "remote_ip_blocks",
    "not_remote_ip_blocks",
)  # fmt: skip
_OPERATION_FIELDS = (
    "hosts", "not_hosts", "ports", "not_ports", "methods", "not_methods", "paths", "not_paths"
)  # fmt: skip
_IP_KEYS = frozenset({"source.ip", "remote.ip", "destination.ip"})
_PLAIN_KEYS = frozenset(
    {
        "source.namespace", "source.principal", "request.auth.principal",
        "request.auth.audiences", "request.auth.presenter", "connection.sni",
    }
)  # fmt: skip
_MAP_KEY_PREFIXES = (
    "request.headers", "request.experimental.inline.headers", "request.auth.claims",
    "experimental.envoy.filters.",
)  # fmt: skip


def _wire(cls: type[sec.Source] | type[sec.Operation], name: str) -> str:
    alias = cls.model_fields[name].alias
    return alias if isinstance(alias, str) else name


@rule(sec.AuthorizationPolicy)
def _authorization_policy(ap: sec.AuthorizationPolicy, findings: Findings) -> None:
    out = findings.at("spec")
    spec = ap.spec
    action = spec.effective_action
    chosen = [spec.selector is not None, spec.target_ref is not None, bool(spec.target_refs)]
    if sum(chosen) > 1:
        out.error("MG1019", "set only one of selector, targetRef or targetRefs", "selector")
    if spec.selector is not None:
        labels = spec.selector.match_labels
        for reason in c.selector_problems(labels):
            out.error("MG1049", reason, "selector", "matchLabels")
        if not labels:
            out.warn("MG1049", "selector without labels: selects every workload", "selector")
    if spec.target_ref is not None:
        _target(out.at("targetRef"), spec.target_ref)
    for i, ref in enumerate(spec.target_refs or []):
        _target(out.at("targetRefs", i), ref)
    if action == "CUSTOM":
        if spec.rules is None:
            out.error(
                "MG1075",
                "action CUSTOM without rules never triggers; add rules: [{}] to match "
                "every request",
                "rules",
            )
        elif spec.provider is None or not spec.provider.name:
            out.error("MG1036", "action CUSTOM needs provider.name", "provider")
        for i, r in enumerate(spec.rules or []):
            _custom_rule(out.at("rules", i), r)
    if spec.provider is not None and action != "CUSTOM":
        out.error("MG1036", f"provider is only used with action CUSTOM, not {action}", "provider")
    if action == "DENY" and spec.rules is None:
        out.error(
            "MG1075",
            "action DENY without rules never triggers; add rules: [{}] to match every request",
            "rules",
        )
    for i, r in enumerate(spec.rules or []):
        _rule(out.at("rules", i), r, deny=action == "DENY")


def _target(out: Findings, ref: sec.PolicyTargetReference) -> None:
    if not ref.name:
        out.error("MG1078", "targetRef name must be set", "name")
    if ref.namespace:
        out.error("MG1078", "targetRef namespace must not be set (no cross-namespace)", "namespace")
    if (ref.group or "", ref.kind) not in _TARGET_KINDS:
        out.error(
            "MG1078",
            f"targetRef must be a Service, ServiceEntry, Gateway or GatewayClass, not "
            f"{ref.group or 'core'}/{ref.kind}",
            "kind",
        )


def _custom_rule(out: Findings, r: sec.Rule) -> None:
    for j, f in enumerate(r.from_ or []):
        src = f.source
        if src is None:
            continue
        for name in (
            "namespaces",
            "not_namespaces",
            "service_accounts",
            "not_service_accounts",
            "principals",
            "not_principals",
            "request_principals",
            "not_request_principals",
        ):
            if getattr(src, name):
                wire = _wire(sec.Source, name)
                out.error(
                    "MG1075",
                    f"from.{wire} is not supported with action CUSTOM",
                    "from",
                    j,
                    "source",
                    wire,
                )
    for j, cond in enumerate(r.when or []):
        key = cond.key
        if key in ("source.namespace", "source.serviceAccount", "source.principal") or (
            key.startswith("request.auth.")
        ):
            out.error(
                "MG1075", f"condition {key} is not supported with action CUSTOM", "when", j, "key"
            )


def _rule(out: Findings, r: sec.Rule, *, deny: bool) -> None:
    if r.from_ is not None and not r.from_:
        out.error("MG1037", "from must not be empty when written", "from")
    if r.to is not None and not r.to:
        out.error("MG1037", "to must not be empty when written", "to")
    has_from = has_to = tcp_from = tcp_to = False
    for j, f in enumerate(r.from_ or []):
        at = out.at("from", j, "source")
        if f.source is None:
            at.error("MG1037", "from.source must be set")
            continue
        has_from = True
        tcp_from = tcp_from or any(getattr(f.source, n) is not None for n in _TCP_SOURCE_FIELDS)
        _source(at, f.source)
    for j, t in enumerate(r.to or []):
        at = out.at("to", j, "operation")
        if t.operation is None:
            at.error("MG1037", "to.operation must be set")
            continue
        has_to = True
        tcp_to = tcp_to or t.operation.ports is not None or t.operation.not_ports is not None
        _operation(at, t.operation)
    for j, cond in enumerate(r.when or []):
        _condition(out.at("when", j), cond)
    if deny and ((has_from and not has_to and not tcp_from) or (has_to and not tcp_to)):
        out.warn(
            "MG1080",
            "this DENY rule uses only HTTP attributes, so it denies all TCP traffic in its "
            "scope; name the ports explicitly",
        )


def _source(out: Findings, src: sec.Source) -> None:
    if not any(getattr(src, n) for n in _SOURCE_FIELDS):
        out.error("MG1037", "from.source must set at least one field")
    if (src.principals or src.not_principals or src.namespaces or src.not_namespaces) and (
        src.service_accounts or src.not_service_accounts
    ):
        out.error(
            "MG1025",
            "serviceAccounts cannot be combined with principals or namespaces",
            "serviceAccounts",
        )
    for name in ("ip_blocks", "not_ip_blocks", "remote_ip_blocks", "not_remote_ip_blocks"):
        for i, value in enumerate(getattr(src, name) or []):
            if value:
                out.check("MG1017", c.subnet_problem(value), _wire(sec.Source, name), i)
    for name in _SOURCE_FIELDS:
        values = getattr(src, name) or []
        wire = _wire(sec.Source, name)
        if name in ("service_accounts", "not_service_accounts"):
            out.check("MG1076", _service_accounts_problem(values), wire)
        elif any(v == "" for v in values):
            out.error("MG1076", f"empty value not allowed in {wire}", wire)


def _service_accounts_problem(values: list[str]) -> str | None:
    if len(values) > 16:
        return "at most 16 service accounts"
    for value in values:
        if not value:
            return "empty value not allowed"
        if "*" in value:
            return f"wildcard not allowed in service account {value!r}"
        if value.count("/") > 1 or len(value) > 320:
            return f"expected 'serviceAccount' or 'namespace/serviceAccount', found {value!r}"
        ns, slash, sa = value.partition("/")
        if slash and (not ns or not sa):
            return f"expected 'serviceAccount' or 'namespace/serviceAccount', found {value!r}"
    return None


def _operation(out: Findings, op: sec.Operation) -> None:
    if not any(getattr(op, n) for n in _OPERATION_FIELDS):
        out.error("MG1037", "to.operation must set at least one field")
    for name in _OPERATION_FIELDS:
        values = getattr(op, name) or []
        wire = _wire(sec.Operation, name)
        if any(v == "" for v in values):
            out.error("MG1076", f"empty value not allowed in {wire}", wire)
        if name in ("ports", "not_ports"):
            out.check("MG1076", _ports_problem(values), wire)
        if name in ("paths", "not_paths"):
            out.check("MG1076", _paths_problem(values), wire)


def _ports_problem(values: list[str]) -> str | None:
    bad = [v for v in values if v and not (v.isascii() and v.isdigit() and int(v) <= 65535)]
    return f"bad port(s) {bad}: use numbers 0..65535" if bad else None


def _paths_problem(paths: list[str]) -> str | None:
    for path in paths:
        templated = "{*}" in path or "{**}" in path
        any_seen = False
        for glob in path.strip("/").split("/"):
            if glob in ("{*}", "{**}"):
                if any_seen:
                    return f"invalid path {path!r}: {{**}} must be the last operator"
                any_seen = glob == "{**}"
                continue
            if "{" in glob or "}" in glob:
                return f"invalid path {path!r}: '{{' or '}}' outside a {{*}} or {{**}} template"
            if templated and not _PATH_LITERAL.match(glob):
                return f"invalid path {path!r}: segment {glob!r} is not a valid literal"
    return None


def _condition(out: Findings, cond: sec.Condition) -> None:
    key = cond.key
    if not key:
        out.error("MG1037", "a condition needs a key", "key")
        return
    if not cond.values and not cond.not_values:
        out.error("MG1037", f"condition {key} needs values or notValues", "values")
        return
    for wire, values in (("values", cond.values or []), ("notValues", cond.not_values or [])):
        if values:
            out.check("MG1077", _attribute_problem(key, values), wire)


def _attribute_problem(key: str, values: list[str]) -> str | None:
    if any(v == "" for v in values):
        return f"empty value not allowed for {key}"
    if key.startswith(_MAP_KEY_PREFIXES):
        bracket = key.find("[")
        if key.endswith("]") and 0 < bracket < len(key) - 2:
            return None
        return f"bad key {key!r}: should have format a[b]"
    if key in _IP_KEYS:
        bad = [v for v in values if c.subnet_problem(v)]
        return f"bad IP address or CIDR: {bad}" if bad else None
    if key == "source.serviceAccount":
        return _service_accounts_problem(values)
    if key == "destination.port":
        return _ports_problem(values)
    if key in _PLAIN_KEYS:
        return None
    if key == "destination.namespace":
        return f"attribute {key} is replaced by metadata.namespace"
    if key.startswith("destination.labels"):
        return f"attribute {key} is replaced by the workload selector"
    if key in ("destination.name", "destination.user"):
        return f"deprecated attribute {key}: only supported in v1alpha1"
    return f"unknown attribute: {key}"


@rule(sec.PeerAuthentication)
def _peer_authentication(pa: sec.PeerAuthentication, findings: Findings) -> None:
    """Istio's ValidatePeerAuthentication: a workload selector as everywhere; port-level
    settings only on a policy that selects workloads (ports are the workload's own)."""
    out = findings.at("spec")
    spec = pa.spec
    labels = spec.selector.match_labels if spec.selector is not None else None
    if spec.selector is not None:
        for reason in c.selector_problems(labels):
            out.error("MG1049", reason, "selector", "matchLabels")
    if spec.port_level_mtls is not None and not labels:
        out.error(
            "MG1087",
            "portLevelMtls needs a selector with labels: a mesh- or namespace-wide"
            " PeerAuthentication cannot set ports",
            "portLevelMtls",
        )
    for port in sorted(spec.port_level_mtls or {}):
        if not 1 <= port <= 65535:
            out.error("MG1003", f"port {port} is not in 1..65535", "portLevelMtls", str(port))


_NOT_ENFORCED = (
    "stored for analysis only: meshgate's proxies do not validate JWTs, so requests with a "
    "missing or invalid token are not rejected and request.auth.* claims are never set"
)
_HEADER_NAME = re.compile(r"^[a-zA-Z0-9!#$%&'*+.^_`|~-]+$")


@rule(sec.RequestAuthentication)
def _request_authentication(ra: sec.RequestAuthentication, findings: Findings) -> None:
    out = findings.at("spec")
    spec = ra.spec
    chosen = [spec.selector is not None, spec.target_ref is not None, bool(spec.target_refs)]
    if sum(chosen) > 1:
        out.error("MG1019", "set only one of selector, targetRef or targetRefs", "selector")
    if spec.selector is not None:
        for reason in c.selector_problems(spec.selector.match_labels):
            out.error("MG1049", reason, "selector", "matchLabels")
    if spec.target_ref is not None:
        _target(out.at("targetRef"), spec.target_ref)
    for i, ref in enumerate(spec.target_refs or []):
        _target(out.at("targetRefs", i), ref)
    for i, jwt in enumerate(spec.jwt_rules or []):
        _jwt_rule(out.at("jwtRules", i), jwt)
    out.warn("MG1093", _NOT_ENFORCED)


def _jwt_rule(out: Findings, jwt: sec.JWTRule) -> None:
    """Istio's validateJwtRule (the JWKS document itself is not parsed here)."""
    if not jwt.issuer and not jwt.jwks_uri:
        out.error("MG1093", "issuer or jwksUri must be non-empty string", "issuer")
    if jwt.jwks_uri:
        scheme = urlsplit(jwt.jwks_uri).scheme
        if scheme not in ("http", "https"):
            out.error("MG1093", f"URI scheme {scheme!r} is not supported", "jwksUri")
    for i, audience in enumerate(jwt.audiences or []):
        if not audience:
            out.error("MG1093", "audience must be non-empty string", "audiences", i)
    for i, header in enumerate(jwt.from_headers or []):
        if not header.name:
            out.error("MG1093", "location header name must be non-empty string", "fromHeaders", i)
    for i, param in enumerate(jwt.from_params or []):
        if not param:
            out.error("MG1093", "location query must be non-empty string", "fromParams", i)
    for i, cookie in enumerate(jwt.from_cookies or []):
        if not cookie:
            out.error("MG1093", "cookie name must be non-empty string", "fromCookies", i)
    for i, pair in enumerate(jwt.output_claim_to_headers or []):
        if not pair.claim or not pair.header:
            out.error(
                "MG1093",
                "outputClaimToHeaders header and claim value must be non-empty string",
                "outputClaimToHeaders",
                i,
            )
        elif not _HEADER_NAME.match(pair.header):
            out.error("MG1093", f"invalid header name {pair.header!r}", "outputClaimToHeaders", i)
    if jwt.timeout is not None:
        out.check("MG1093", c.duration_problem(jwt.timeout), "timeout")
