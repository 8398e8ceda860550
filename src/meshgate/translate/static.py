"""A static Envoy bootstrap from a ProxyConfig: for ``envoy --mode validate`` and xDS-free runs.

Rules of this module:
- Nothing is dropped: RDS references become inline ``route_config`` (a missing route
  configuration becomes an empty one of that name), EDS clusters become STATIC clusters
  carrying their ClusterLoadAssignment, secrets go under ``static_resources.secrets``.
- An SDS reference (over ADS) to a secret that ``config.secrets`` holds becomes a static
  reference to it: Envoy 1.40 crashes on SDS-over-ADS in a static cluster, and a static
  bootstrap has no ADS anyway. Callers that validate mesh-mTLS configs put the identity
  secrets (``default``, ``ROOTCA``) in ``config.secrets`` first.
- The input is never mutated; the result is a ``Bootstrap`` protobuf message.
"""

from __future__ import annotations

from typing import Any

from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2

from meshgate.translate.filters import HCM
from meshgate.translate.output import ProxyConfig
from meshgate.translate.pb import pack, socket_address


def _inline_routes(listener: Any, routes: dict[str, Any]) -> Any:
    copy = type(listener)()
    copy.CopyFrom(listener)
    for chain in copy.filter_chains:
        for f in chain.filters:
            if f.name != HCM:
                continue
            hcm = hcm_pb2.HttpConnectionManager()
            f.typed_config.Unpack(hcm)
            if not hcm.HasField("rds"):
                continue
            name = hcm.rds.route_config_name
            hcm.route_config.CopyFrom(routes.get(name, route_pb2.RouteConfiguration(name=name)))
            f.typed_config.CopyFrom(pack(hcm))
    return copy


def _static_cluster(cluster: Any, assignments: dict[str, Any]) -> Any:
    copy = cluster_pb2.Cluster()
    copy.CopyFrom(cluster)
    if copy.type == cluster_pb2.Cluster.EDS:
        service = copy.eds_cluster_config.service_name or copy.name
        copy.ClearField("eds_cluster_config")
        copy.type = cluster_pb2.Cluster.STATIC
        cla = assignments.get(service)
        copy.load_assignment.cluster_name = copy.name
        if cla is not None:
            copy.load_assignment.endpoints.extend(cla.endpoints)
    return copy


def _static_sds(context: Any, names: set[str]) -> bool:
    """Drop the ADS source of SDS references to static secrets (in place); True if any."""
    common = context.common_tls_context
    refs = list(common.tls_certificate_sds_secret_configs)
    if common.HasField("validation_context_sds_secret_config"):
        refs.append(common.validation_context_sds_secret_config)
    if common.HasField("combined_validation_context"):
        refs.append(common.combined_validation_context.validation_context_sds_secret_config)
    changed = False
    for ref in refs:
        if ref.name in names and ref.HasField("sds_config"):
            ref.ClearField("sds_config")
            changed = True
    return changed


def _static_socket(socket: Any, names: set[str]) -> None:
    packed = socket.typed_config
    for kind in (tls_pb2.UpstreamTlsContext, tls_pb2.DownstreamTlsContext):
        if packed.Is(kind.DESCRIPTOR):
            context = kind()
            packed.Unpack(context)
            if _static_sds(context, names):
                socket.typed_config.CopyFrom(pack(context))
            return


def static_bootstrap(
    config: ProxyConfig, node_id: str = "static", *, admin_port: int | None = None
) -> Any:
    routes = {r.name: r for r in config.routes}
    assignments = {a.cluster_name: a for a in config.endpoints}
    boot = bootstrap_pb2.Bootstrap()
    boot.node.id = node_id
    boot.node.cluster = "meshgate"
    boot.static_resources.listeners.extend(_inline_routes(lis, routes) for lis in config.listeners)
    boot.static_resources.clusters.extend(_static_cluster(c, assignments) for c in config.clusters)
    boot.static_resources.secrets.extend(config.secrets)
    names = {s.name for s in config.secrets}
    if names:
        for cluster in boot.static_resources.clusters:
            if cluster.HasField("transport_socket"):
                _static_socket(cluster.transport_socket, names)
            for match in cluster.transport_socket_matches:
                _static_socket(match.transport_socket, names)
        for listener in boot.static_resources.listeners:
            for chain in listener.filter_chains:
                if chain.HasField("transport_socket"):
                    _static_socket(chain.transport_socket, names)
    if admin_port is not None:
        boot.admin.address.CopyFrom(socket_address("127.0.0.1", admin_port))
    return boot
