"""HTTP route rules of a VirtualService (Istio's validateHTTPRoute and helpers).

Rules of this module:
- A route is one of three types: in a delegate VirtualService (no hosts) it may not
  delegate again; a root route (with ``delegate``) may set neither ``route`` nor
  ``redirect``; otherwise it needs ``route``, ``redirect`` or ``directResponse``, and
  ``redirect``/``directResponse`` exclude ``route``, ``fault`` and ``rewrite``.
- String matches: ``prefix`` and ``regex`` are not empty (a uri prefix may be), a regex
  compiles as RE2; header names are header tokens, pseudo-headers or JWT claims.
- Weights are not negative and do not all sum to 0; Istio accepts other sums (and
  normalises them), so a sum other than 100 is only warned.
- Durations are at least 1ms in whole milliseconds; percentages within 0..100.
"""

from __future__ import annotations

from collections.abc import Sequence

from meshgate.api.kinds import istio_networking as net
from meshgate.api.kinds.types import parse_duration
from meshgate.validation import common as c
from meshgate.validation import shared
from meshgate.validation.findings import Findings
from meshgate.validation.regex import re2_problem

RETRY_ON = frozenset(
    {
        "5xx", "gateway-error", "reset", "reset-before-request", "connect-failure",
        "retriable-4xx", "refused-stream", "retriable-status-codes", "retriable-headers",
        "envoy-ratelimited", "http3-post-connect-failure", "cancelled", "deadline-exceeded",
        "internal", "resource-exhausted", "unavailable",
    }
)  # fmt: skip
HTTP_STATUS_CODES = frozenset(
    {100, 101, 102, 103, *range(200, 209), 226, *range(300, 309), *range(400, 419), 421}
    | {422, 423, 424, 425, 426, 428, 429, 431, 451, *range(500, 509), 510, 511}
)
HTTP_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE"}
)
GRPC_STATUS = frozenset(
    {
        "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
        "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
        "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
        "UNAUTHENTICATED",
    }
)  # fmt: skip
_KB = 1024
_MB = 1024 * _KB


def string_match(
    out: Findings, sm: net.StringMatch | None, *path: str | int, empty_prefix_ok: bool = False
) -> None:
    if sm is None:
        return
    if sm.prefix is not None and sm.prefix == "" and not empty_prefix_ok:
        out.error("MG1046", "prefix string match should not be empty", *path, "prefix")
    if sm.regex is not None:
        if sm.regex == "":
            out.error("MG1046", "regex string match should not be empty", *path, "regex")
        else:
            out.check("MG1045", re2_problem(sm.regex), *path, "regex")


def http_route(out: Findings, http: net.HTTPRoute, *, in_delegate: bool) -> None:
    _conflicts(out, http, in_delegate=in_delegate)
    for j, m in enumerate(http.match or []):
        _match(out.at("match", j), m)
    header_ops(out.at("headers"), http.headers)
    _cors(out.at("corsPolicy"), http.cors_policy)
    _fault(out.at("fault"), http.fault)
    if http.mirror_percent is not None:
        if http.mirror_percent > 100:
            out.error("MG1033", "mirrorPercent must be at most 100", "mirrorPercent")
        out.warn("MG1033", "mirrorPercent is deprecated; use mirrorPercentage", "mirrorPercent")
    if http.mirror_percentage is not None and http.mirror_percentage.value is not None:
        out.check("MG1033", c.percent_problem(http.mirror_percentage.value), "mirrorPercentage")
    if http.mirror is not None:
        shared.destination(out.at("mirror"), http.mirror)
    for j, mirror in enumerate(http.mirrors or []):
        shared.destination(out.at("mirrors", j, "destination"), mirror.destination)
        if mirror.percentage is not None and mirror.percentage.value is not None:
            out.check(
                "MG1033", c.percent_problem(mirror.percentage.value), "mirrors", j, "percentage"
            )
    _redirect(out.at("redirect"), http.redirect)
    _direct_response(out.at("directResponse"), http.direct_response)
    _retries(out.at("retries"), http.retries)
    _rewrite(out, http)
    route_destinations(out.at("route"), http.route or [])
    for j, dest in enumerate(http.route or []):
        header_ops(out.at("route", j, "headers"), dest.headers)
    shared.duration(out, http.timeout, "timeout")


def _conflicts(out: Findings, http: net.HTTPRoute, *, in_delegate: bool) -> None:
    if not in_delegate and http.delegate is not None:
        if http.redirect is not None:
            out.error("MG1059", "a root route (with delegate) must not set redirect", "redirect")
        if http.route is not None:
            out.error("MG1059", "a root route (with delegate) must not set route", "route")
        return
    if in_delegate and http.delegate is not None:
        out.error("MG1059", "a route of a delegate VirtualService cannot delegate", "delegate")
    if http.redirect is not None:
        for value, wire in (
            (http.route, "route"),
            (http.fault, "fault"),
            (http.rewrite, "rewrite"),
        ):
            if value:
                out.error("MG1060", f"a route cannot have both redirect and {wire}", wire)
        if http.direct_response is not None:
            out.error("MG1060", "a route cannot have both redirect and directResponse", "redirect")
    elif http.direct_response is not None:
        for value, wire in (
            (http.route, "route"),
            (http.fault, "fault"),
            (http.rewrite, "rewrite"),
        ):
            if value:
                out.error("MG1060", f"a route cannot have both directResponse and {wire}", wire)
    elif not http.route:
        out.error("MG1021", "a route needs route, redirect or directResponse", "route")
    if http.mirror is not None and http.mirrors:
        out.error("MG1060", "a route cannot have both mirror and mirrors", "mirrors")


def _match(out: Findings, m: net.HTTPMatchRequest) -> None:
    if all(getattr(m, f) is None for f in net.HTTPMatchRequest.model_fields):
        out.warn("MG1029", "an empty match block matches every request")
    for name, sm in (m.headers or {}).items():
        out.check("MG1047", c.header_match_name_problem(name), "headers", name)
        if name != name.lower() and not c.is_jwt_claim_header(name):
            out.warn("MG1032", f"header names are matched lowercase: {name!r}", "headers", name)
        string_match(out, sm, "headers", name)
    for name, sm in (m.without_headers or {}).items():
        out.check("MG1047", c.header_match_name_problem(name), "withoutHeaders", name)
        if sm.regex != "*":  # "*" means "present", not a regex
            string_match(out, sm, "withoutHeaders", name)
    string_match(out, m.uri, "uri", empty_prefix_ok=True)
    for field in ("scheme", "method", "authority"):
        sm = getattr(m, field)
        string_match(out, sm, field)
        if sm is not None and sm.is_presence:
            out.warn("MG1029", f"{field} sets none of exact, prefix, regex: it matches all", field)
    if m.uri is not None and m.uri.is_presence:
        out.warn("MG1029", "uri sets none of exact, prefix, regex: it matches all", "uri")
    for name, sm in (m.query_params or {}).items():
        string_match(out, sm, "queryParams", name)
    if m.port:
        out.check("MG1003", c.port_problem(m.port), "port")
    shared.labels(out, m.source_labels, "sourceLabels")
    shared.gateway_names(out.at("gateways"), m.gateways)
    if m.source_namespace and not c.is_dns1123_label(m.source_namespace):
        out.error("MG1030", f"invalid sourceNamespace {m.source_namespace!r}", "sourceNamespace")


def header_ops(out: Findings, headers: net.Headers | None) -> None:
    if headers is None:
        return
    req, resp = headers.request, headers.response
    for side, ops, is_request in (("request", req, True), ("response", resp, False)):
        if ops is None:
            continue
        for verb in ("add", "set"):
            for name, value in (getattr(ops, verb) or {}).items():
                reason = (
                    c.request_set_header_problem(name)
                    if is_request
                    else c.header_operation_problem(name)
                )
                out.check("MG1047", reason, side, verb, name)
                out.check("MG1047", c.header_value_problem(value), side, verb, name)
        for i, name in enumerate(ops.remove or []):
            out.check("MG1047", c.header_operation_problem(name), side, "remove", i)


def _cors(out: Findings, cors: net.CorsPolicy | None) -> None:
    if cors is None:
        return
    for i, origin in enumerate(cors.allow_origins or []):
        value = origin.exact or origin.prefix or origin.regex
        if not value:
            out.error("MG1066", "an allowOrigins entry needs a non-empty match", "allowOrigins", i)
        elif origin.regex:
            out.check("MG1045", re2_problem(origin.regex), "allowOrigins", i, "regex")
    for i, method in enumerate(cors.allow_methods or []):
        if method not in HTTP_METHODS:
            out.error("MG1066", f"{method!r} is not a supported HTTP method", "allowMethods", i)
    for wire, names in (
        ("allowHeaders", cors.allow_headers),
        ("exposeHeaders", cors.expose_headers),
    ):
        for i, name in enumerate(names or []):
            out.check("MG1066", c.cors_header_name_problem(name), wire, i)
    if cors.max_age is not None:
        shared.duration(out, cors.max_age, "maxAge")
        seconds = parse_duration(cors.max_age)
        if seconds != int(seconds):
            out.error("MG1066", "maxAge is accurate only to whole seconds", "maxAge")


def _fault(out: Findings, fault: net.HTTPFaultInjection | None) -> None:
    if fault is None:
        return
    if fault.abort is None and fault.delay is None:
        out.error("MG1065", "fault injection needs an abort and/or a delay")
    abort = fault.abort
    if abort is not None:
        if abort.percentage is not None and abort.percentage.value is not None:
            out.check("MG1033", c.fraction_problem(abort.percentage.value), "abort", "percentage")
        if abort.grpc_status is not None:
            if abort.grpc_status not in GRPC_STATUS:
                out.error(
                    "MG1065",
                    f"gRPC status {abort.grpc_status!r} is not supported",
                    "abort",
                    "grpcStatus",
                )
        elif abort.http2_error is not None:
            out.error("MG1065", "HTTP/2 abort fault injection is not supported", "abort")
        elif abort.http_status is not None:
            if not 200 <= abort.http_status <= 600:
                out.error(
                    "MG1065",
                    f"HTTP status {abort.http_status} is not in range 200-599",
                    "abort",
                    "httpStatus",
                )
        else:
            out.warn("MG1065", "abort configured without an error type", "abort")
    delay = fault.delay
    if delay is not None:
        if delay.percentage is not None and delay.percentage.value is not None:
            out.check("MG1033", c.fraction_problem(delay.percentage.value), "delay", "percentage")
        if delay.percent is not None:
            out.check("MG1033", c.percent_problem(delay.percent), "delay", "percent")
        shared.duration(out, delay.fixed_delay, "delay", "fixedDelay")
        if delay.exponential_delay is not None:
            out.error("MG1065", "exponentialDelay is not supported", "delay", "exponentialDelay")


def _redirect(out: Findings, redirect: net.HTTPRedirect | None) -> None:
    if redirect is None:
        return
    if not (redirect.uri or redirect.authority or redirect.scheme) and (
        redirect.port is None and redirect.derive_port is None
    ):
        out.error("MG1061", "a redirect must set uri, authority, scheme or port")
        return
    code = redirect.redirect_code
    if code and not 300 <= code <= 399:
        out.error("MG1061", f"{code} is not a valid redirect code: use 3xx", "redirectCode")
    elif redirect.scheme and redirect.scheme not in ("http", "https"):
        out.error("MG1061", 'redirect scheme must be "http" or "https"', "scheme")
    elif redirect.port:
        out.check("MG1003", c.port_problem(redirect.port), "port")


def _direct_response(out: Findings, dr: net.HTTPDirectResponse | None) -> None:
    if dr is None:
        return
    body = dr.body
    size = len((body.string or body.bytes or "") if body is not None else "")
    if size > _MB:
        out.error("MG1062", "a direct response body must be smaller than 1MB", "body")
    elif size > 100 * _KB:
        out.warn("MG1062", "large direct responses may slow the control plane", "body")
    if not 200 <= dr.status <= 600:
        out.error("MG1062", f"HTTP status {dr.status} is not in range 200-599", "status")


def _retries(out: Findings, retries: net.HTTPRetry | None) -> None:
    if retries is None:
        return
    attempts = retries.attempts or 0
    if attempts < 0:
        out.error("MG1063", "attempts cannot be negative", "attempts")
    if attempts == 0 and (
        retries.per_try_timeout is not None
        or retries.retry_on
        or retries.retry_remote_localities is not None
    ):
        out.error("MG1063", "retry policy set while attempts is 0 (retries disabled)", "attempts")
    shared.duration(out, retries.per_try_timeout, "perTryTimeout")
    shared.duration(out, retries.backoff, "backoff")
    for policy in (retries.retry_on or "").split(",") if retries.retry_on else []:
        known = policy in RETRY_ON or (policy.isdigit() and int(policy) in HTTP_STATUS_CODES)
        if not known:
            out.error("MG1063", f"{policy!r} is not a valid retryOn policy", "retryOn")


def _rewrite(out: Findings, http: net.HTTPRoute) -> None:
    rewrite = http.rewrite
    if rewrite is not None:
        regex = rewrite.uri_regex_rewrite
        if rewrite.uri and regex is not None:
            out.error("MG1038", "set uri or uriRegexRewrite, not both", "rewrite")
        elif not rewrite.uri and regex is None and not rewrite.authority:
            out.error("MG1064", "a rewrite must set uri, uriRegexRewrite or authority", "rewrite")
        elif regex is not None:
            if not regex.match or not regex.rewrite:
                out.error(
                    "MG1064",
                    "uriRegexRewrite needs both match and rewrite",
                    "rewrite",
                    "uriRegexRewrite",
                )
            else:
                out.check("MG1045", re2_problem(regex.match), "rewrite", "uriRegexRewrite", "match")
    current = rewrite.authority if rewrite is not None else None
    req = http.headers.request if http.headers is not None else None
    for verb in ("set", "add"):
        for name in (getattr(req, verb) or {}) if req is not None else {}:
            if c.is_authority_header(name):
                if current:
                    out.error(
                        "MG1064",
                        "the authority can be rewritten only once",
                        "headers",
                        "request",
                        verb,
                        name,
                    )
                current = name


def route_destinations(
    out: Findings, routes: Sequence[net.HTTPRouteDestination | net.RouteDestination]
) -> None:
    total = 0
    for i, r in enumerate(routes):
        shared.destination(out.at(i, "destination"), r.destination)
        weight = r.weight or 0
        if weight < 0:
            out.error("MG1026", f"weight {weight} is negative", i, "weight")
        total += weight
    if len(routes) > 1 and total == 0:
        out.error("MG1005", f"weights of {len(routes)} destinations sum to 0")
    elif len(routes) > 1 and total != 100:
        out.warn("MG1005", f"weights of {len(routes)} destinations sum to {total}, not 100")
