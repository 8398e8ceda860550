"""One proxy's configuration as Envoy ACKed it, unpacked and indexed by name.

Rules:
- Built from what the xDS server recorded as ACKed (packed ``Any`` per type URL) or from a
  translator ``ProxyConfig`` (tests, the egress dry-run): the same messages either way.
- Filters' ``typed_config`` is unpacked only for the types the walk reads (HTTP connection
  manager, TCP proxy, RBAC); anything else stays opaque.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment
from envoy.config.listener.v3.listener_pb2 import Listener
from envoy.config.route.v3.route_pb2 import RouteConfiguration
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as http_rbac_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.rbac.v3 import rbac_pb2 as net_rbac_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2

from meshgate.translate.output import CLUSTER, ENDPOINT, LISTENER, ROUTE, ProxyConfig

_MESSAGES: dict[str, type[Any]] = {
    LISTENER: Listener,
    ROUTE: RouteConfiguration,
    CLUSTER: Cluster,
    ENDPOINT: ClusterLoadAssignment,
}

HCM = hcm_pb2.HttpConnectionManager
TCP_PROXY = tcp_proxy_pb2.TcpProxy
HTTP_RBAC = http_rbac_pb2.RBAC
NET_RBAC = net_rbac_pb2.RBAC
UPSTREAM_TLS = tls_pb2.UpstreamTlsContext


def unpack(any_msg: Any, cls: type[Any]) -> Any | None:
    """``any_msg`` as ``cls`` when it holds one, else None."""
    if not any_msg.type_url.endswith("/" + cls.DESCRIPTOR.full_name):
        return None
    out = cls()
    any_msg.Unpack(out)
    return out


@dataclass
class ProxyView:
    """A proxy's listeners, route configurations, clusters and endpoints by name."""

    node_id: str
    listeners: list[Any] = field(default_factory=list)
    routes: dict[str, Any] = field(default_factory=dict)
    clusters: dict[str, Any] = field(default_factory=dict)
    endpoints: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_packed(cls, node_id: str, by_type: Mapping[str, Sequence[Any]]) -> ProxyView:
        items: dict[str, list[Any]] = {}
        for url, message in _MESSAGES.items():
            out = []
            for packed in by_type.get(url, ()):
                m = unpack(packed, message)
                if m is not None:
                    out.append(m)
            items[url] = out
        return cls._of(node_id, items)

    @classmethod
    def from_config(cls, node_id: str, config: ProxyConfig) -> ProxyView:
        return cls._of(node_id, config.by_type())

    @classmethod
    def _of(cls, node_id: str, items: Mapping[str, Sequence[Any]]) -> ProxyView:
        return cls(
            node_id=node_id,
            listeners=list(items.get(LISTENER, ())),
            routes={r.name: r for r in items.get(ROUTE, ())},
            clusters={c.name: c for c in items.get(CLUSTER, ())},
            endpoints={e.cluster_name: e for e in items.get(ENDPOINT, ())},
        )

    @property
    def empty(self) -> bool:
        return not self.listeners
