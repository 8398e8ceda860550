"""What the translator hands to the xDS server: one proxy's Envoy resources.

Rules: lists hold Envoy v3 protobuf messages, sorted by name, so that the same input
always gives byte-identical output (stable versions, stable golden files).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"
ROUTE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
ENDPOINT = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
SECRET = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"


@dataclass
class ProxyConfig:
    """Envoy resources for one proxy, keyed by xDS type URL."""

    listeners: list[Any] = field(default_factory=list)
    routes: list[Any] = field(default_factory=list)
    clusters: list[Any] = field(default_factory=list)
    endpoints: list[Any] = field(default_factory=list)
    secrets: list[Any] = field(default_factory=list)

    def by_type(self) -> dict[str, list[Any]]:
        return {
            LISTENER: self.listeners,
            ROUTE: self.routes,
            CLUSTER: self.clusters,
            ENDPOINT: self.endpoints,
            SECRET: self.secrets,
        }
