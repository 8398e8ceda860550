"""Network and listener filters shared by sidecar and gateway listeners.

Rules of this module:
- Filter names are Envoy's canonical extension names; typed configs are packed in ``Any``.
- Sidecar outbound HCM: ``use_remote_address: false``, server header ``envoy`` overwritten
  (a client behind a sidecar always sees ``server: envoy``). Gateway HCM:
  ``use_remote_address: true`` (appends the peer to x-forwarded-for), server ``istio-envoy``.
- HTTP filter chain: the refusal logger (``translate.refusals``: header to metadata), fault
  (route-level faults need it present), then the router. Gateways map a 404 ``NR`` to its
  logged reason; ``authorize`` adds a mapper per AuthorizationPolicy for its denials.
- Authorization (``security.authz``) is added to finished listeners by ``authorize``: the
  HTTP RBAC filters first in every HCM (after the refusal logger), the network RBAC filters
  just before every tcp_proxy. Done on the finished listener, not where each chain is
  built, so that every chain a gateway serves gets them, whichever module made it.
- Tracing is on in sidecar and gateway HCMs, as in Istio's, with no provider (Envoy's null
  tracer: no spans, no trace headers) and nothing sampled: it is there so that Envoy sends
  the route's decorator upstream as ``x-envoy-decorator-operation`` (the listeners are
  OUTBOUND, so Envoy propagates it on requests and strips it from responses). Unsampled,
  Envoy marks the x-request-id's trace reason (its 15th character is ``9``), as Istio's do.
"""

from __future__ import annotations

from typing import Any

from envoy.config.listener.v3 import listener_components_pb2 as lc
from envoy.extensions.access_loggers.stream.v3 import stream_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as http_rbac_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.listener.original_dst.v3 import original_dst_pb2
from envoy.extensions.filters.listener.tls_inspector.v3 import tls_inspector_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.type.v3 import percent_pb2

from meshgate.translate import refusals
from meshgate.translate.accesslog import ACCESS_LOG_FORMAT, access_log_config
from meshgate.translate.pb import ads_source, boolean, pack

HCM = "envoy.filters.network.http_connection_manager"
TCP_PROXY = "envoy.filters.network.tcp_proxy"
ROUTER = "envoy.filters.http.router"
FAULT = "envoy.filters.http.fault"
ORIGINAL_DST = "envoy.filters.listener.original_dst"
TLS_INSPECTOR = "envoy.filters.listener.tls_inspector"

HttpConnectionManager = hcm_pb2.HttpConnectionManager


def default_http_filters() -> list[Any]:
    return [
        hcm_pb2.HttpFilter(name=FAULT, typed_config=pack(fault_pb2.HTTPFault())),
        hcm_pb2.HttpFilter(name=ROUTER, typed_config=pack(router_pb2.Router())),
    ]


def http_connection_manager(
    stat_prefix: str, route_name: str, *, gateway: bool, access_log: bool
) -> Any:
    hcm = HttpConnectionManager(
        stat_prefix=stat_prefix,
        codec_type=HttpConnectionManager.AUTO,
        rds=hcm_pb2.Rds(config_source=ads_source(), route_config_name=route_name),
        http_filters=[refusals.header_mover(), *default_http_filters()],
        use_remote_address=boolean(gateway),
        generate_request_id=boolean(True),
        server_header_transformation=HttpConnectionManager.OVERWRITE,
        normalize_path=boolean(True),
        path_with_escaped_slashes_action=HttpConnectionManager.KEEP_UNCHANGED,
        upgrade_configs=[HttpConnectionManager.UpgradeConfig(upgrade_type="websocket")],
        tracing=HttpConnectionManager.Tracing(
            client_sampling=percent_pb2.Percent(value=100),
            random_sampling=percent_pb2.Percent(value=0),
            overall_sampling=percent_pb2.Percent(value=100),
        ),
    )
    if gateway:
        hcm.server_name = "istio-envoy"
        # As Istio's gateways: a client's mesh identity (mTLS) is passed on, never trusted
        # from the request itself.
        hcm.forward_client_cert_details = HttpConnectionManager.SANITIZE_SET
        details = hcm.set_current_client_cert_details
        details.subject.value = True
        details.dns = True
        details.uri = True
        # A host no route serves (404 NR) is logged with its reason.
        hcm.local_reply_config.mappers.append(refusals.no_route_mapper())
    if access_log:
        hcm.access_log.extend(access_log_config(grpc="http"))
    return lc.Filter(name=HCM, typed_config=pack(hcm))


def tcp_proxy(
    stat_prefix: str,
    cluster: str | list[tuple[str, int]],
    *,
    access_log: bool,
    refusal: str | None = None,
) -> Any:
    """A tcp_proxy filter to one cluster, or weighted over ``[(cluster, weight)]``;
    ``refusal``: the chain refuses every connection, and its log says why (``refusals``)."""
    proxy = tcp_proxy_pb2.TcpProxy(stat_prefix=stat_prefix)
    if isinstance(cluster, str):
        proxy.cluster = cluster
    else:
        for name, weight in cluster:
            proxy.weighted_clusters.clusters.add(name=name, weight=weight)
    if access_log:
        fields = refusals.tcp_log_fields(refusal) if refusal else None
        proxy.access_log.extend(access_log_config(fields, grpc="tcp"))
    return lc.Filter(name=TCP_PROXY, typed_config=pack(proxy))


def original_dst_filter() -> Any:
    return lc.ListenerFilter(name=ORIGINAL_DST, typed_config=pack(original_dst_pb2.OriginalDst()))


def tls_inspector_filter() -> Any:
    return lc.ListenerFilter(
        name=TLS_INSPECTOR, typed_config=pack(tls_inspector_pb2.TlsInspector())
    )


def authorize(listeners: list[Any], http_filters: list[Any], network_filters: list[Any]) -> None:
    """Put RBAC filters into every filter chain of ``listeners`` (in place)."""
    if not http_filters and not network_filters:
        return
    for listener in listeners:
        for chain in listener.filter_chains:
            filters = list(chain.filters)
            out = []
            for f in filters:
                if f.name == HCM and http_filters:
                    hcm = HttpConnectionManager()
                    f.typed_config.Unpack(hcm)
                    rest = list(hcm.http_filters)
                    head = [f for f in rest[:1] if f.name == refusals.HEADER_TO_METADATA]
                    del hcm.http_filters[:]
                    hcm.http_filters.extend([*head, *http_filters, *rest[len(head) :]])
                    # A denial's local reply names its policy (``translate.refusals``).
                    mappers = refusals.rbac_mappers(_policy_ids(http_filters))
                    mappers += list(hcm.local_reply_config.mappers)
                    del hcm.local_reply_config.mappers[:]
                    hcm.local_reply_config.mappers.extend(mappers)
                    f = lc.Filter(name=HCM, typed_config=pack(hcm))
                elif f.name == TCP_PROXY and network_filters:
                    out.extend(network_filters)
                    f = _log_network_denials(f)
                out.append(f)
            del chain.filters[:]
            chain.filters.extend(out)


def _log_network_denials(f: Any) -> Any:
    """The tcp_proxy behind network RBAC logs a denial's reason (Envoy's termination
    details) in ``istio_policy_status``; a chain that refuses everything keeps its own."""
    proxy = tcp_proxy_pb2.TcpProxy()
    f.typed_config.Unpack(proxy)
    if not proxy.access_log:
        return f
    logger = stream_pb2.StdoutAccessLog()
    proxy.access_log[0].typed_config.Unpack(logger)
    fields = logger.log_format.json_format.fields
    if fields[refusals.STATUS_KEY].string_value != ACCESS_LOG_FORMAT[refusals.STATUS_KEY]:
        return f
    del proxy.access_log[:]
    proxy.access_log.extend(
        access_log_config(refusals.tcp_log_fields(refusals.NETWORK_RBAC), grpc="tcp")
    )
    return lc.Filter(name=TCP_PROXY, typed_config=pack(proxy))


def _policy_ids(http_filters: list[Any]) -> list[str]:
    """The enforced policy names of HTTP RBAC filters (shadow rules never deny)."""
    ids: list[str] = []
    for f in http_filters:
        config = http_rbac_pb2.RBAC()
        if f.typed_config.Unpack(config):
            ids.extend(sorted(config.rules.policies))
    return ids
