"""A static Envoy bootstrap from a ProxyConfig: for ``envoy --mode validate`` and xDS-free runs.

Rules of this module:
- Nothing is dropped: RDS references become inline ``route_config`` (a missing route
  configuration becomes an empty one of that name), EDS clusters become STATIC clusters
  carrying their ClusterLoadAssignment, secrets go under ``static_resources.secrets``.
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
    if admin_port is not None:
        boot.admin.address.CopyFrom(socket_address("127.0.0.1", admin_port))
    return boot
