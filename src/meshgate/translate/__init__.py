"""The translator: a pure function from (snapshot, proxy) to that proxy's Envoy resources.

Rules of this package:
- No I/O, no clock, no randomness: the same snapshot and proxy always give byte-identical
  output, each list sorted by resource name.
- Istio vocabulary in, Envoy vocabulary out; names come from ``translate.naming``.
- Sidecars get ``virtualOutbound`` plus per-port outbound listeners; routers get listeners
  from the Gateways that select them. Both get clusters for every visible service.
- Secrets (SDS) are only those the proxy's clusters and listeners refer to, from Kubernetes
  Secrets in the proxy's namespace (``translate.secrets``); a sidecar's keys only when RBAC
  lets its service account read Secrets (``security.secretaccess``).
- Sidecars also get ``virtualInbound`` (``translate.inbound``): mTLS per PeerAuthentication
  and the hand-off to the app; clients send mesh mTLS to endpoints with a proxy (auto mTLS,
  ``translate.automtls``) where no DestinationRule sets ``tls``.
- AuthorizationPolicies (``security.authz``) guard the inbound side of a workload: every
  listener of a router, a sidecar's ``virtualInbound`` (never its outbound listeners).
- The mesh's access-log encoding and format are applied last, to the finished listeners
  (``translate.accesslog.apply_mesh_format``); every module builds the default JSON line.
"""

from __future__ import annotations

from typing import Any

from meshgate.model.proxy import Proxy
from meshgate.model.snapshot import Snapshot
from meshgate.translate import accesslog, dynamic_dns, filters, inbound
from meshgate.translate.clusters import build_clusters
from meshgate.translate.gateway import gateway_resources
from meshgate.translate.output import CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET, ProxyConfig
from meshgate.translate.secrets import build_secrets, referenced
from meshgate.translate.sidecar import sidecar_resources

__all__ = ["ProxyConfig", "resource_names", "translate"]


def _by_name(items: list[Any]) -> list[Any]:
    return sorted(items, key=lambda m: m.name)


def translate(snapshot: Snapshot, proxy: Proxy) -> ProxyConfig:
    """Every Envoy resource ``proxy`` needs under ``snapshot``."""
    # Imported here, not at the top: security builds on translate.pb, so a module-level
    # import would make each package's __init__ import the other.
    from meshgate.security import authz

    services = snapshot.visible_services(proxy)
    if proxy.is_router:
        listeners, routes = gateway_resources(snapshot, proxy)
        filters.authorize(
            listeners, authz.http_filters(snapshot, proxy), authz.network_filters(snapshot, proxy)
        )
    else:
        listeners, routes = sidecar_resources(snapshot, proxy, services)
        inbound_listener = inbound.virtual_inbound(snapshot, proxy)
        filters.authorize(
            [inbound_listener],
            authz.http_filters(snapshot, proxy),
            authz.network_filters(snapshot, proxy),
        )
        listeners.append(inbound_listener)
    clusters, assignments = build_clusters(snapshot, proxy, services)
    if not proxy.is_router:
        clusters.extend(inbound.inbound_clusters(snapshot, proxy))
    dynamic_dns.finish(listeners, *dynamic_dns.upstream_ports(clusters, services))
    accesslog.apply_mesh_format(
        listeners, snapshot.mesh.access_log_encoding, snapshot.mesh.access_log_format
    )
    secrets = build_secrets(snapshot, proxy, referenced(clusters, listeners))
    return ProxyConfig(
        listeners=_by_name(listeners),
        routes=_by_name(routes),
        clusters=_by_name(clusters),
        endpoints=sorted(assignments, key=lambda a: a.cluster_name),
        secrets=secrets,
    )


def resource_names(config: ProxyConfig) -> dict[str, list[str]]:
    """Names per xDS type URL: what RDS and EDS subscriptions will ask for."""
    return {
        LISTENER: [m.name for m in config.listeners],
        ROUTE: [m.name for m in config.routes],
        CLUSTER: [m.name for m in config.clusters],
        ENDPOINT: [m.cluster_name for m in config.endpoints],
        SECRET: [m.name for m in config.secrets],
    }
