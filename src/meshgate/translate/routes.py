"""HTTP routes: VirtualService HTTPRoutes, default routes and catch-all virtual hosts.

Rules of this module:
- One Envoy route per applicable match block of an HTTPRoute (blocks are ORed), in the
  VirtualService's order: Envoy takes the first route that matches, as Istio does.
- A match block applies to a listener when its ``gateways`` (or the VirtualService's) name
  the target (``mesh`` for sidecars, ``ns/name`` for a gateway) and its ``port`` is unset
  or equals the listener's port. A route with match blocks none of which applies is skipped.
- Route names: ``http.name`` or ``http.name.match.name``; unnamed routes log ``-``.
- Defaults follow Istio: route timeout 0 (disabled) unless set; the mesh default retry
  policy (2 attempts) unless ``retries`` is set.
- Decorator operations as Istio's ``getRouteOperation``: ``HOST:PORT`` of the route's one
  cluster (from its ``outbound|PORT|SUBSET|HOST`` name), else ``VS-NAME:LISTENER-PORT``
  (weighted, redirect, direct response); then the path: ``PREFIX*``, the exact path, the
  regex, or ``/*``. With tracing on in the HCM (``translate.filters``) Envoy sends it
  upstream as ``x-envoy-decorator-operation``.
- Destination hosts are expanded relative to the VirtualService's namespace; a missing
  port takes the service's only port, else the listener's port.
- Every route made from a VirtualService carries Istio's config metadata,
  ``filter_metadata.istio.config: /apis/networking.istio.io/v1/namespaces/NS/virtual-service/N``
  (util.BuildConfigInfoMetadata), which ``proxy-config route`` shows as ``N.NS``.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.filters.common.fault.v3 import fault_pb2 as common_fault
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.extensions.retry.host.previous_hosts.v3 import previous_hosts_pb2
from envoy.type.matcher.v3 import regex_pb2, string_pb2
from envoy.type.v3 import percent_pb2
from google.protobuf import struct_pb2

from meshgate.model import hosts
from meshgate.model.fields import get, get_int, get_list, get_str
from meshgate.model.proxy import Proxy
from meshgate.model.snapshot import MeshSettings, Snapshot, qualify_gateway, vs_gateways
from meshgate.translate import naming, refusals
from meshgate.translate.pb import duration, pack, seconds

FAULT_FILTER = "envoy.filters.http.fault"
ISTIO_METADATA_KEY = "istio"
# The version Istio's config store holds networking resources in, whatever a user wrote.
NETWORKING_CONFIG_PREFIX = "/apis/networking.istio.io/v1/namespaces/"
_REDIRECT_CODES = {
    301: rc.RedirectAction.MOVED_PERMANENTLY,
    302: rc.RedirectAction.FOUND,
    303: rc.RedirectAction.SEE_OTHER,
    307: rc.RedirectAction.TEMPORARY_REDIRECT,
    308: rc.RedirectAction.PERMANENT_REDIRECT,
}

PortOf = Callable[[str], int | None]
"""Given a destination host, the port to use when the destination names none."""


def single_port_lookup(snapshot: Snapshot, proxy: Proxy) -> PortOf:
    """A destination host's only port, from the service the proxy has for it (Istio's
    sidecar scope); hosts outside the scope fall back to the namespace's view."""

    def port_of(host: str) -> int | None:
        svc = snapshot.service_for(proxy, host) or snapshot.service(host, proxy.namespace)
        if svc is not None and len(svc.ports) == 1:
            return svc.ports[0].number
        return None

    return port_of


@dataclass(frozen=True)
class RouteContext:
    """What route translation needs beyond the VirtualService itself."""

    target: str  # "mesh" or "ns/gateway"
    port: int  # the listener (sidecar) or server (gateway) port
    vhost_host: str  # the virtual host's service
    mesh: MeshSettings
    single_port: PortOf


def applicable_matches(http: Any, vs: Any, target: str, port: int) -> list[Any] | None:
    """The match blocks of ``http`` that apply to this listener; [None] means match-all."""
    top = vs_gateways(vs)
    namespace = get_str(get(vs, "metadata"), "namespace") or "default"
    matches = get_list(http, "match")
    if not matches:
        return [None] if target in top else None
    kept = []
    for m in matches:
        own = get_list(m, "gateways")
        gws = [qualify_gateway(str(g), namespace) for g in own] if own else top
        if target not in gws:
            continue
        mport = get_int(m, "port")
        if mport and mport != port:
            continue
        kept.append(m)
    return kept or None


def string_matcher(match: Any, ignore_case: bool = False) -> Any:
    sm = string_pb2.StringMatcher()
    if get(match, "exact") is not None:
        sm.exact = get_str(match, "exact")
    elif get(match, "prefix") is not None:
        sm.prefix = get_str(match, "prefix")
    elif get(match, "regex") is not None:
        sm.safe_regex.CopyFrom(regex_pb2.RegexMatcher(regex=get_str(match, "regex")))
    if ignore_case:
        sm.ignore_case = True
    return sm


def _header_matchers(values: Any, invert: bool) -> list[Any]:
    result = []
    items = values.items() if isinstance(values, dict) else []
    for name, match in sorted(items):
        hm = rc.HeaderMatcher(name=str(name).lower())
        if match is None or (
            get(match, "exact") is None
            and get(match, "prefix") is None
            and get(match, "regex") is None
        ):
            hm.present_match = True
        else:
            hm.string_match.CopyFrom(string_matcher(match))
        if invert:
            hm.invert_match = True
        result.append(hm)
    return result


def route_match(match: Any | None) -> Any:
    rm = rc.RouteMatch()
    uri = get(match, "uri")
    if get(match, "ignore_uri_case"):
        rm.case_sensitive.value = False
    if uri is not None and get(uri, "exact") is not None:
        rm.path = get_str(uri, "exact")
    elif uri is not None and get(uri, "regex") is not None:
        rm.safe_regex.CopyFrom(regex_pb2.RegexMatcher(regex=get_str(uri, "regex")))
    elif uri is not None and get(uri, "prefix") is not None:
        rm.prefix = get_str(uri, "prefix")
    else:
        rm.prefix = "/"
    if match is None:
        return rm
    rm.headers.extend(_header_matchers(_as_dict(get(match, "headers")), invert=False))
    rm.headers.extend(_header_matchers(_as_dict(get(match, "without_headers")), invert=True))
    for pseudo, field in (
        (":method", "method"),
        (":authority", "authority"),
        (":scheme", "scheme"),
    ):
        value = get(match, field)
        if value is not None:
            rm.headers.append(rc.HeaderMatcher(name=pseudo, string_match=string_matcher(value)))
    for name, value in sorted(_as_dict(get(match, "query_params")).items()):
        qp = rc.QueryParameterMatcher(name=str(name))
        if value is None or (
            get(value, "exact") is None
            and get(value, "prefix") is None
            and (get(value, "regex") is None)
        ):
            qp.present_match = True
        else:
            qp.string_match.CopyFrom(string_matcher(value))
        rm.query_parameters.append(qp)
    return rm


def _as_dict(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    extra = getattr(value, "model_extra", None)
    if extra:
        return dict(extra)
    return {}


def header_options(ops: Any) -> tuple[list[Any], list[str]]:
    """HeaderOperations set/add/remove -> (headers_to_add, headers_to_remove)."""
    adds = []
    for name, value in sorted(_str_items(get(ops, "set"))):
        adds.append(
            base_pb2.HeaderValueOption(
                header=base_pb2.HeaderValue(key=name, value=value),
                append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
            )
        )
    for name, value in sorted(_str_items(get(ops, "add"))):
        adds.append(
            base_pb2.HeaderValueOption(
                header=base_pb2.HeaderValue(key=name, value=value),
                append_action=base_pb2.HeaderValueOption.APPEND_IF_EXISTS_OR_ADD,
            )
        )
    removes = [str(h) for h in get_list(ops, "remove")]
    return adds, removes


def _str_items(value: Any) -> list[tuple[str, str]]:
    return [(str(k), str(v)) for k, v in _as_dict(value).items()]


def _apply_headers(target: Any, headers: Any) -> None:
    if headers is None:
        return
    req_add, req_remove = header_options(get(headers, "request"))
    resp_add, resp_remove = header_options(get(headers, "response"))
    target.request_headers_to_add.extend(req_add)
    target.request_headers_to_remove.extend(req_remove)
    target.response_headers_to_add.extend(resp_add)
    target.response_headers_to_remove.extend(resp_remove)


def destination_cluster(destination: Any, vs_namespace: str, ctx: RouteContext) -> str:
    host = hosts.expand_short_name(get_str(destination, "host"), vs_namespace)
    port = get_int(get(destination, "port"), "number")
    if not port:
        port = ctx.single_port(host) or ctx.port
    return naming.cluster_name(port, get_str(destination, "subset"), host)


def _fractional(percentage: Any) -> Any:
    value = float(get(percentage, "value", 100.0)) if percentage is not None else 100.0
    return percent_pb2.FractionalPercent(
        numerator=round(value * 10_000), denominator=percent_pb2.FractionalPercent.MILLION
    )


def fault_config(fault: Any) -> Any:
    config = fault_pb2.HTTPFault()
    delay = get(fault, "delay")
    if delay is not None and get_str(delay, "fixed_delay"):
        config.delay.CopyFrom(
            common_fault.FaultDelay(
                fixed_delay=duration(get_str(delay, "fixed_delay")),
                percentage=_fractional(get(delay, "percentage")),
            )
        )
    abort = get(fault, "abort")
    if abort is not None:
        config.abort.percentage.CopyFrom(_fractional(get(abort, "percentage")))
        if get(abort, "grpc_status") is not None:
            config.abort.grpc_status = _grpc_code(get_str(abort, "grpc_status"))
        else:
            config.abort.http_status = get_int(abort, "http_status", 500)
    return config


_GRPC = [
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
    "UNAUTHENTICATED",
]  # fmt: skip


def _grpc_code(name: str) -> int:
    return _GRPC.index(name) if name in _GRPC else (int(name) if name.isdigit() else 2)


def retry_policy(retries: Any, mesh: MeshSettings) -> Any | None:
    if retries is None:
        default = _mesh_retry_policy(mesh)
        if default is None:
            return None
        policy = rc.RetryPolicy()
        policy.CopyFrom(default)
        return policy
    return _retry_policy(retries, mesh)


@functools.lru_cache(maxsize=16)
def _mesh_retry_policy(mesh: MeshSettings) -> Any | None:
    """The mesh default retry policy; built once per mesh setting. Callers copy it (never
    hand out this instance: protobuf messages are mutable)."""
    return _retry_policy(None, mesh)


def _retry_policy(retries: Any, mesh: MeshSettings) -> Any | None:
    if retries is None:
        attempts, retry_on = mesh.retry_attempts, mesh.retry_on
    else:
        attempts = get_int(retries, "attempts")
        retry_on = get_str(retries, "retry_on") or mesh.retry_on
    if attempts <= 0:
        return None
    policy = rc.RetryPolicy(retry_on=retry_on, host_selection_retry_max_attempts=5)
    policy.num_retries.value = attempts
    policy.retry_host_predicate.append(
        rc.RetryPolicy.RetryHostPredicate(
            name="envoy.retry_host_predicates.previous_hosts",
            typed_config=pack(previous_hosts_pb2.PreviousHostsPredicate()),
        )
    )
    codes = [int(c) for c in retry_on.split(",") if c.strip().isdigit()]
    if codes:
        policy.retriable_status_codes.extend(codes)
        policy.retry_on = ",".join(
            [c for c in retry_on.split(",") if not c.strip().isdigit()] + ["retriable-status-codes"]
        )
    if retries is not None and get_str(retries, "per_try_timeout"):
        policy.per_try_timeout.CopyFrom(duration(get_str(retries, "per_try_timeout")))
    return policy


def _route_action(http: Any, vs_namespace: str, ctx: RouteContext) -> Any:
    action = rc.RouteAction()
    destinations = get_list(http, "route")
    if len(destinations) == 1:
        action.cluster = destination_cluster(get(destinations[0], "destination"), vs_namespace, ctx)
    else:
        weights = [get_int(d, "weight") for d in destinations]
        if not any(weights):
            weights = [1] * len(destinations)
        for d, w in zip(destinations, weights, strict=True):
            if w <= 0:
                continue
            cw = rc.WeightedCluster.ClusterWeight(
                name=destination_cluster(get(d, "destination"), vs_namespace, ctx)
            )
            cw.weight.value = w
            _apply_headers(cw, get(d, "headers"))
            action.weighted_clusters.clusters.append(cw)
    timeout = get_str(http, "timeout")
    action.timeout.CopyFrom(duration(timeout) if timeout else seconds(0))
    if get(http, "fault") is None:
        policy = retry_policy(get(http, "retries"), ctx.mesh)
        if policy is not None:
            action.retry_policy.CopyFrom(policy)
    rewrite = get(http, "rewrite")
    if rewrite is not None:
        if get_str(rewrite, "uri"):
            action.prefix_rewrite = get_str(rewrite, "uri")
        if get_str(rewrite, "authority"):
            action.host_rewrite_literal = get_str(rewrite, "authority")
        regex = get(rewrite, "uri_regex_rewrite")
        if regex is not None:
            action.regex_rewrite.pattern.regex = get_str(regex, "match")
            action.regex_rewrite.substitution = get_str(regex, "rewrite")
    mirrors = list(get_list(http, "mirrors"))
    if get(http, "mirror") is not None:
        mirrors.insert(
            0, {"destination": get(http, "mirror"), "percentage": get(http, "mirror_percentage")}
        )
    for mirror in mirrors:
        policy = rc.RouteAction.RequestMirrorPolicy(
            cluster=destination_cluster(get(mirror, "destination"), vs_namespace, ctx)
        )
        percentage = get(mirror, "percentage")
        policy.runtime_fraction.default_value.CopyFrom(_fractional(percentage))
        action.request_mirror_policies.append(policy)
    return action


def _redirect(redirect: Any) -> Any:
    action = rc.RedirectAction()
    if get_str(redirect, "uri"):
        action.path_redirect = get_str(redirect, "uri")
    if get_str(redirect, "authority"):
        action.host_redirect = get_str(redirect, "authority")
    if get_int(redirect, "port"):
        action.port_redirect = get_int(redirect, "port")
    if get_str(redirect, "scheme"):
        action.scheme_redirect = get_str(redirect, "scheme")
    code = get_int(redirect, "redirect_code", 301)
    action.response_code = _REDIRECT_CODES.get(code, rc.RedirectAction.MOVED_PERMANENTLY)  # type: ignore[assignment]
    return action


def config_metadata(vs: Any) -> Any:
    """``metadata.filter_metadata.istio.config`` naming the VirtualService a route came from."""
    meta = get(vs, "metadata")
    namespace = get_str(meta, "namespace") or "default"
    ref = f"{NETWORKING_CONFIG_PREFIX}{namespace}/virtual-service/{get_str(meta, 'name')}"
    metadata = base_pb2.Metadata()
    metadata.filter_metadata[ISTIO_METADATA_KEY].CopyFrom(
        struct_pb2.Struct(fields={"config": struct_pb2.Value(string_value=ref)})
    )
    return metadata


def http_routes(vs: Any, ctx: RouteContext) -> list[Any]:
    """Envoy routes for every HTTPRoute of ``vs`` that applies to ``ctx``'s listener."""
    namespace = get_str(get(vs, "metadata"), "namespace") or "default"
    result = []
    metadata = None
    for http in get_list(get(vs, "spec"), "http"):
        matches = applicable_matches(http, vs, ctx.target, ctx.port)
        if matches is None:
            continue
        if metadata is None:
            metadata = config_metadata(vs)
        name = get_str(get(vs, "metadata"), "name")
        for match in matches:
            result.append(_one_route(http, match, namespace, name, ctx, metadata))
    return result


def _one_route(
    http: Any, match: Any | None, namespace: str, vs_name: str, ctx: RouteContext, metadata: Any
) -> Any:
    route = rc.Route(
        name=naming.http_route_name(get_str(http, "name"), get_str(match, "name")),
        match=route_match(match),
        metadata=metadata,
    )
    redirect = get(http, "redirect")
    direct = get(http, "direct_response")
    if redirect is not None:
        route.redirect.CopyFrom(_redirect(redirect))
    elif direct is not None:
        route.direct_response.status = get_int(direct, "status", 200)
        body = get(direct, "body")
        if get_str(body, "string"):
            route.direct_response.body.inline_string = get_str(body, "string")
        elif get(body, "bytes") is not None:
            route.direct_response.body.inline_bytes = base64.b64decode(get_str(body, "bytes"))
    else:
        route.route.CopyFrom(_route_action(http, namespace, ctx))
    _apply_headers(route, get(http, "headers"))
    fault = get(http, "fault")
    if fault is not None:
        route.typed_per_filter_config[FAULT_FILTER].CopyFrom(pack(fault_config(fault)))
    route.decorator.operation = _operation(route, vs_name, ctx.port)
    return route


def _operation(route: Any, vs_name: str, port: int) -> str:
    """Istio's getRouteOperation: the span (and x-envoy-decorator-operation) name."""
    m = route.match
    which = m.WhichOneof("path_specifier")
    path = "/*"
    if which == "prefix":
        path = m.prefix + "*"
    elif which == "path":
        path = m.path
    elif which == "safe_regex":
        path = m.safe_regex.regex
    parts = route.route.cluster.split("|") if route.HasField("route") else []
    if len(parts) == 4 and parts[1].isdigit():
        return f"{parts[3]}:{parts[1]}{path}"
    return f"{vs_name}:{port}{path}"


def default_route(cluster: str, host: str, port: int, mesh: MeshSettings) -> Any:
    """The ``default`` route of a service without a VirtualService."""
    # A sidecar has one of these per visible service (tens of thousands): copy a prepared
    # route and set the two fields that differ.
    route = rc.Route()
    route.CopyFrom(_default_route_template(mesh))
    route.route.cluster = cluster
    route.decorator.operation = f"{host}:{port}/*"
    return route


@functools.lru_cache(maxsize=16)
def _default_route_template(mesh: MeshSettings) -> Any:
    """A ``default`` route without cluster and decorator. Callers copy it, never share it."""
    action = rc.RouteAction(timeout=seconds(0))
    policy = _mesh_retry_policy(mesh)
    if policy is not None:
        action.retry_policy.CopyFrom(policy)
    return rc.Route(name=naming.DEFAULT_ROUTE, match=rc.RouteMatch(prefix="/"), route=action)


def catch_all_vhost(mode: str, source: str = "") -> Any:
    """``allow_any`` -> PassthroughCluster, or ``block_all`` -> 502 with no body; ``source``
    (the sidecar's pod) is named in the refusal's logged reason."""
    if mode == "REGISTRY_ONLY":
        route = rc.Route(name=naming.BLOCK_ALL_VHOST, match=rc.RouteMatch(prefix="/"))
        route.direct_response.status = 502
        # Logged by the refusing sidecar with its reason (``translate.refusals``).
        reason = refusals.registry_only_http(source)
        route.response_headers_to_add.append(refusals.refusal_header(reason))
        return rc.VirtualHost(name=naming.BLOCK_ALL_VHOST, domains=["*"], routes=[route])
    route = rc.Route(
        name=naming.ALLOW_ANY_VHOST,
        match=rc.RouteMatch(prefix="/"),
        route=rc.RouteAction(cluster=naming.PASSTHROUGH_CLUSTER, timeout=seconds(0)),
    )
    return rc.VirtualHost(name=naming.ALLOW_ANY_VHOST, domains=["*"], routes=[route])
