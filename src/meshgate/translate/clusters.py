"""Clusters (CDS) and their endpoints (EDS) for one proxy.

Rules of this module:
- One cluster ``outbound|<port>||<host>`` per visible service port, plus one per
  DestinationRule subset ``outbound|<port>|<subset>|<host>``.
- Resolution -> cluster type as Istio's convertResolution: DNS -> STRICT_DNS,
  DNS_ROUND_ROBIN -> LOGICAL_DNS, STATIC (and Kubernetes Services) -> EDS, NONE ->
  ORIGINAL_DST on sidecars and EDS with no endpoints on routers (so the gateway answers
  503 UH instead of looping to itself). Wildcard hosts with DYNAMIC_DNS, and on routers
  with NONE too, are dynamic forward proxy clusters instead (``translate.dynamic_dns``).
  A headless Kubernetes Service is NONE too (Istio's Passthrough): ORIGINAL_DST on
  sidecars, and on routers EDS over its endpoints (the pods or Endpoints addresses, never
  the gateway itself). An ExternalName Service (ALIAS) has no cluster: its name reaches
  the cluster of the service it names (Istio 1.21+).
- DNS clusters re-resolve as Istio's: ``dns_refresh_rate`` 60 s (MeshConfig
  ``dnsRefreshRate``'s default) and ``respect_dns_ttl`` (a shorter TTL refreshes sooner),
  with c-ares ``udp_max_queries`` 100. Unlike Istio, names that are absolute (two dots or
  more, not ``*.svc``) skip the pod's search domains (``no_default_search_domain``).
- The DestinationRule is the one the model merged for the host (several rules for one host
  add up: subsets appended, the oldest top-level policy kept).
- Traffic policy: subset policy fields override the rule's top-level fields; a matching
  ``portLevelSettings`` entry then replaces lb/connection pool/outlier/tls as a whole.
- Client TLS is built by ``translate.tls``; ``credentialName`` counts on gateways, and on
  sidecars from a DestinationRule with a workloadSelector (Istio's rule).
  Without a DestinationRule ``tls``, auto mTLS (``translate.automtls``) may add transport
  socket matches; endpoints of pods with a sidecar carry the metadata they match on.
- Output is sorted by name by the caller; nothing here depends on input order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from envoy.config.cluster.v3 import circuit_breaker_pb2, cluster_pb2, outlier_detection_pb2
from envoy.config.core.v3 import extension_pb2, protocol_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.extensions.network.dns_resolver.cares.v3 import cares_dns_resolver_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2

from meshgate.model import protocol
from meshgate.model.destinationrules import selector_of
from meshgate.model.fields import get, get_int, get_list, get_str, str_map
from meshgate.model.proxy import Proxy
from meshgate.model.services import Endpoint, Service, ServicePort
from meshgate.model.snapshot import Snapshot
from meshgate.translate import dynamic_dns, naming
from meshgate.translate.automtls import AutoMtls, endpoint_metadata
from meshgate.translate.pb import ads_source, duration, pack
from meshgate.translate.tls import upstream_tls

Cluster = cluster_pb2.Cluster
HTTP_OPTIONS_KEY = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
# Istio's MeshConfig default ``dnsRefreshRate``; meshgate's MeshConfig has no such field.
DNS_REFRESH_RATE = "60s"
CARES_RESOLVER = "envoy.network.dns_resolver.cares"
CARES_UDP_MAX_QUERIES = 100  # Istio's PILOT_DNS_CARES_UDP_MAX_QUERIES default

_LB = {
    "ROUND_ROBIN": Cluster.ROUND_ROBIN,
    "LEAST_REQUEST": Cluster.LEAST_REQUEST,
    "LEAST_CONN": Cluster.LEAST_REQUEST,
    "RANDOM": Cluster.RANDOM,
    "PASSTHROUGH": Cluster.CLUSTER_PROVIDED,
}


@dataclass(frozen=True)
class Policy:
    """The effective traffic policy for one cluster (model objects or dicts, possibly None)."""

    load_balancer: Any = None
    connection_pool: Any = None
    outlier_detection: Any = None
    tls: Any = None


_POLICY_FIELDS = ("load_balancer", "connection_pool", "outlier_detection", "tls")


def effective_policy(rule: Any | None, subset: str, port: int) -> Policy:
    if rule is None:
        return Policy()
    spec = get(rule, "spec")
    top = get(spec, "traffic_policy")
    merged: dict[str, Any] = {f: get(top, f) for f in _POLICY_FIELDS}
    port_levels = get_list(top, "port_level_settings")
    if subset:
        for s in get_list(spec, "subsets"):
            if get_str(s, "name") == subset:
                sub = get(s, "traffic_policy")
                for f in _POLICY_FIELDS:
                    if get(sub, f) is not None:
                        merged[f] = get(sub, f)
                port_levels = get_list(sub, "port_level_settings") or port_levels
    for pls in port_levels:
        if get_int(get(pls, "port"), "number") == port:
            merged = {f: get(pls, f) for f in _POLICY_FIELDS}
            break
    return Policy(**merged)


def subset_labels(rule: Any | None, subset: str) -> dict[str, str] | None:
    """A subset's labels, or None when the rule has no such subset."""
    for s in get_list(get(rule, "spec"), "subsets"):
        if get_str(s, "name") == subset:
            return str_map(get(s, "labels"))
    return None


def passthrough_cluster(connect_timeout: str) -> Any:
    return Cluster(
        name=naming.PASSTHROUGH_CLUSTER,
        type=Cluster.ORIGINAL_DST,
        lb_policy=Cluster.CLUSTER_PROVIDED,
        connect_timeout=duration(connect_timeout),
        alt_stat_name=naming.PASSTHROUGH_CLUSTER,
    )


def blackhole_cluster(connect_timeout: str) -> Any:
    return Cluster(
        name=naming.BLACKHOLE_CLUSTER,
        type=Cluster.STATIC,
        connect_timeout=duration(connect_timeout),
        alt_stat_name=naming.BLACKHOLE_CLUSTER,
    )


def _fill_assignment(cla: Any, endpoints: Iterable[Endpoint]) -> None:
    """Endpoints into ``cla`` in place: one locality, nothing at all when there are none."""
    locality = None
    for ep in endpoints:
        if locality is None:
            locality = cla.endpoints.add()
        lb = locality.lb_endpoints.add()
        address = lb.endpoint.address.socket_address
        address.address = ep.address
        address.port_value = ep.port
        metadata = endpoint_metadata(ep)
        if metadata is not None:
            lb.metadata.CopyFrom(metadata)
        if ep.weight:
            lb.load_balancing_weight.value = ep.weight


def load_assignment(name: str, endpoints: Iterable[Endpoint]) -> Any:
    cla = endpoint_pb2.ClusterLoadAssignment(cluster_name=name)
    _fill_assignment(cla, endpoints)
    return cla


def _filter(endpoints: Iterable[Endpoint], labels: Mapping[str, str] | None) -> list[Endpoint]:
    if not labels:
        return list(endpoints)
    return [e for e in endpoints if all(e.labels.get(k) == v for k, v in labels.items())]


def _apply_lb(cluster: Any, lb: Any) -> None:
    simple = get_str(lb, "simple")
    if simple in _LB and cluster.type != Cluster.ORIGINAL_DST:
        cluster.lb_policy = _LB[simple]
    consistent = get(lb, "consistent_hash")
    if consistent is not None:
        cluster.lb_policy = Cluster.RING_HASH
        ring = get(consistent, "ring_hash")
        minimum = get_int(ring, "minimum_ring_size") or get_int(consistent, "minimum_ring_size")
        if minimum:
            cluster.ring_hash_lb_config.minimum_ring_size.value = minimum
        if get(consistent, "maglev") is not None:
            cluster.lb_policy = Cluster.MAGLEV


def _apply_pool(cluster: Any, pool: Any, http_options: Any) -> None:
    tcp = get(pool, "tcp")
    http = get(pool, "http")
    thresholds = circuit_breaker_pb2.CircuitBreakers.Thresholds()
    if get(tcp, "max_connections") is not None:
        thresholds.max_connections.value = get_int(tcp, "max_connections")
    if get(http, "http1_max_pending_requests") is not None:
        thresholds.max_pending_requests.value = get_int(http, "http1_max_pending_requests")
    if get(http, "http2_max_requests") is not None:
        thresholds.max_requests.value = get_int(http, "http2_max_requests")
    if get(http, "max_retries") is not None:
        thresholds.max_retries.value = get_int(http, "max_retries")
    if thresholds.ByteSize():
        cluster.circuit_breakers.thresholds.append(thresholds)
    if get_str(tcp, "connect_timeout"):
        cluster.connect_timeout.CopyFrom(duration(get_str(tcp, "connect_timeout")))
    common = http_options.common_http_protocol_options
    if get_int(http, "max_requests_per_connection"):
        common.max_requests_per_connection.value = get_int(http, "max_requests_per_connection")
    if get_str(http, "idle_timeout"):
        common.idle_timeout.CopyFrom(duration(get_str(http, "idle_timeout")))
    if get_str(tcp, "max_connection_duration"):
        common.max_connection_duration.CopyFrom(duration(get_str(tcp, "max_connection_duration")))


def _apply_outlier(cluster: Any, od: Any) -> None:
    out = outlier_detection_pb2.OutlierDetection()
    errors = get(od, "consecutive_5xx_errors")
    if errors is None:
        errors = get(od, "consecutive5xx_errors")
    if errors is not None:
        out.consecutive_5xx.value = int(errors)
        out.enforcing_consecutive_5xx.value = 100 if int(errors) else 0
    gateway = get(od, "consecutive_gateway_errors")
    if gateway is not None:
        out.consecutive_gateway_failure.value = int(gateway)
        out.enforcing_consecutive_gateway_failure.value = 100
    if get(od, "consecutive_local_origin_failures") is not None:
        out.consecutive_local_origin_failure.value = get_int(
            od, "consecutive_local_origin_failures"
        )
    if get(od, "split_external_local_origin_errors") is not None:
        out.split_external_local_origin_errors = bool(get(od, "split_external_local_origin_errors"))
    if get_str(od, "interval"):
        out.interval.CopyFrom(duration(get_str(od, "interval")))
    if get_str(od, "base_ejection_time"):
        out.base_ejection_time.CopyFrom(duration(get_str(od, "base_ejection_time")))
    if get(od, "max_ejection_percent") is not None:
        out.max_ejection_percent.value = get_int(od, "max_ejection_percent")
    cluster.outlier_detection.CopyFrom(out)
    if get(od, "min_health_percent") is not None:
        cluster.common_lb_config.healthy_panic_threshold.value = float(
            get_int(od, "min_health_percent")
        )


def _cluster_type(service: Service, proxy: Proxy) -> int:
    resolution = service.resolution
    if resolution == "DNS":
        return int(Cluster.STRICT_DNS)
    if resolution == "DNS_ROUND_ROBIN":
        return int(Cluster.LOGICAL_DNS)
    if resolution in ("NONE", "DYNAMIC_DNS") and not proxy.is_router:
        return int(Cluster.ORIGINAL_DST)
    return int(Cluster.EDS)


class ClusterTemplates:
    """Name-independent parts of clusters, built once per translation and copied per cluster.

    Why: a proxy may see tens of thousands of services whose clusters differ only in name and
    endpoints; copying a prepared message in C is several times faster than building each
    one field by field in Python. The templates are private: results are always fresh
    copies, never shared with the caller.
    """

    def __init__(self, connect_timeout: str) -> None:
        self.connect_timeout = connect_timeout
        self._timeout = duration(connect_timeout)
        self._bases: dict[tuple[int, bool], Any] = {}
        self._http: dict[bool, Any] = {}

    def cluster(self, ctype: int, name: str, absolute_names: bool = False) -> Any:
        key = (ctype, absolute_names)
        base = self._bases.get(key)
        if base is None:
            base = self._bases[key] = self._base(ctype, absolute_names)
        cluster = Cluster()
        cluster.CopyFrom(base)
        cluster.name = name
        return cluster

    def _base(self, ctype: int, absolute_names: bool) -> Any:
        base = Cluster(type=ctype, connect_timeout=self._timeout)  # type: ignore[arg-type]
        if ctype == Cluster.ORIGINAL_DST:
            base.lb_policy = Cluster.CLUSTER_PROVIDED
        elif ctype == Cluster.EDS:
            base.lb_policy = Cluster.LEAST_REQUEST
            base.eds_cluster_config.eds_config.CopyFrom(ads_source())
        else:
            base.lb_policy = Cluster.LEAST_REQUEST
            base.dns_lookup_family = Cluster.V4_ONLY
            # Envoy's own default re-resolves every 5 s: with hundreds of DNS clusters per
            # proxy that is a steady load on the mesh DNS for answers that rarely change.
            base.dns_refresh_rate.CopyFrom(duration(DNS_REFRESH_RATE))
            base.respect_dns_ttl = True
            base.typed_dns_resolver_config.CopyFrom(resolver_config(absolute_names))
        return base

    def http_options(self, port_protocol: str) -> Any | None:
        """The packed protocol options of an HTTP port without a connection pool policy."""
        if not protocol.is_http(port_protocol):
            return None
        h2 = port_protocol in protocol.H2_FAMILY
        packed = self._http.get(h2)
        if packed is None:
            packed = self._http[h2] = pack(_explicit_http(h2))
        return packed


def resolver_config(absolute_names: bool) -> Any:
    """c-ares as Istio configures it (a fresh UDP socket every 100 queries), and without the
    pod's search domains when every name is absolute.

    Why: with the pod's ``ndots:5`` each FQDN such as ``svc-1.example.com`` is first tried
    under every search domain, four queries where one answers; a CDS push with hundreds of
    DNS clusters then bursts thousands of queries at the mesh DNS, and the proxy's CDS waits
    (paused while clusters warm) for every first resolution, retries of dropped ones included.
    """
    config = cares_dns_resolver_pb2.CaresDnsResolverConfig()
    config.udp_max_queries.value = CARES_UDP_MAX_QUERIES
    if absolute_names:
        config.dns_resolver_options.no_default_search_domain = True
    return extension_pb2.TypedExtensionConfig(name=CARES_RESOLVER, typed_config=pack(config))


def absolute_name(name: str) -> bool:
    """Whether a DNS name needs no search domain: two dots or more and not a Kubernetes
    ``svc.ns.svc`` form that only the ``cluster.local`` search domain completes."""
    return name.count(".") >= 2 and not name.rstrip(".").endswith(".svc")


def _explicit_http(h2: bool) -> Any:
    options = http_protocol_options_pb2.HttpProtocolOptions()
    _set_explicit_http(options, h2)
    return options


def _set_explicit_http(options: Any, h2: bool) -> None:
    explicit = options.explicit_http_config
    if h2:
        explicit.http2_protocol_options.CopyFrom(protocol_pb2.Http2ProtocolOptions())
    else:
        explicit.http_protocol_options.CopyFrom(protocol_pb2.Http1ProtocolOptions())


def service_cluster(
    service: Service,
    port: ServicePort,
    subset: str,
    proxy: Proxy,
    rule: Any | None,
    connect_timeout: str | ClusterTemplates,
    auto: AutoMtls | None = None,
) -> tuple[Any, Any | None]:
    """One outbound cluster and, for EDS clusters, its ClusterLoadAssignment (``auto``:
    auto mTLS where it applies)."""
    templates = (
        connect_timeout
        if isinstance(connect_timeout, ClusterTemplates)
        else ClusterTemplates(connect_timeout)
    )
    name = naming.cluster_name(port.number, subset, service.hostname)
    if dynamic_dns.applies(service, proxy):
        return _dynamic_cluster(name, service, port, subset, proxy, rule, templates), None
    ctype = _cluster_type(service, proxy)
    labels = subset_labels(rule, subset) if subset else None
    endpoints = _filter(service.endpoints.get(port.number, ()), labels)
    absolute = ctype in (Cluster.STRICT_DNS, Cluster.LOGICAL_DNS) and all(
        absolute_name(e.address) for e in endpoints
    )
    cluster = templates.cluster(ctype, name, absolute)
    cla = None
    if ctype == Cluster.EDS:
        cluster.eds_cluster_config.service_name = name
        dialled = service.resolution != "NONE" or service.is_headless
        cla = load_assignment(name, endpoints if dialled else ())
    elif ctype != Cluster.ORIGINAL_DST:
        if ctype == Cluster.LOGICAL_DNS:
            endpoints = endpoints[:1]
        cluster.load_assignment.cluster_name = name
        _fill_assignment(cluster.load_assignment, endpoints)
    policy = effective_policy(rule, subset, port.number) if rule is not None else Policy()
    if (
        auto is not None
        and ctype in (Cluster.EDS, Cluster.STATIC)
        and auto.applies(service, policy.tls is not None)
    ):
        auto.add(cluster, port.number, port.protocol, subset, service.hostname)
    if rule is None:
        packed = templates.http_options(port.protocol)
        if packed is not None:
            cluster.typed_extension_protocol_options[HTTP_OPTIONS_KEY].CopyFrom(packed)
        return cluster, cla
    http_options = http_protocol_options_pb2.HttpProtocolOptions()
    if policy.load_balancer is not None:
        _apply_lb(cluster, policy.load_balancer)
    if policy.connection_pool is not None:
        _apply_pool(cluster, policy.connection_pool, http_options)
    if policy.outlier_detection is not None:
        _apply_outlier(cluster, policy.outlier_detection)
    if policy.tls is not None:
        # credentialName on gateways, and on sidecars only from a DestinationRule with a
        # workloadSelector (Istio); elsewhere a sidecar keeps the file fields.
        credentials = proxy.is_router or selector_of(rule) is not None
        socket = upstream_tls(policy.tls, service.hostname, credentials=credentials)
        if socket is not None:
            cluster.transport_socket.CopyFrom(socket)
    if protocol.is_http(port.protocol):
        _set_explicit_http(http_options, port.protocol in protocol.H2_FAMILY)
    if http_options.ByteSize():
        if not http_options.HasField("explicit_http_config"):
            http_options.use_downstream_protocol_config.CopyFrom(
                http_protocol_options_pb2.HttpProtocolOptions.UseDownstreamHttpConfig()
            )
        cluster.typed_extension_protocol_options[HTTP_OPTIONS_KEY].CopyFrom(pack(http_options))
    return cluster, cla


def _dynamic_cluster(
    name: str,
    service: Service,
    port: ServicePort,
    subset: str,
    proxy: Proxy,
    rule: Any | None,
    templates: ClusterTemplates,
) -> Any:
    """A dynamic forward proxy cluster with the rule's policy, except its load balancer:
    the cluster provides the host (the name asked for), there is nothing to balance."""
    cluster = dynamic_dns.cluster(name, templates.connect_timeout)
    policy = effective_policy(rule, subset, port.number) if rule is not None else Policy()
    http_options = http_protocol_options_pb2.HttpProtocolOptions()
    if policy.connection_pool is not None:
        _apply_pool(cluster, policy.connection_pool, http_options)
    if policy.outlier_detection is not None:
        _apply_outlier(cluster, policy.outlier_detection)
    if policy.tls is not None:
        socket = upstream_tls(policy.tls, service.hostname, credentials=proxy.is_router)
        if socket is not None:
            cluster.transport_socket.CopyFrom(socket)
    if protocol.is_http(port.protocol):
        _set_explicit_http(http_options, port.protocol in protocol.H2_FAMILY)
        # Envoy's rule for these clusters: a TLS origination names, and checks, the host
        # asked for (never one fixed name for every host of the wildcard).
        upstream = http_options.upstream_http_protocol_options
        upstream.auto_sni = True
        upstream.auto_san_validation = True
        cluster.typed_extension_protocol_options[HTTP_OPTIONS_KEY].CopyFrom(pack(http_options))
    return cluster


def build_clusters(
    snapshot: Snapshot, proxy: Proxy, services: Iterable[Service]
) -> tuple[list[Any], list[Any]]:
    """All clusters and load assignments for the proxy's visible services."""
    timeout = snapshot.mesh.connect_timeout
    templates = ClusterTemplates(timeout)
    auto = AutoMtls(snapshot)
    clusters = [passthrough_cluster(timeout), blackhole_cluster(timeout)]
    assignments = []
    for service in services:
        if service.is_alias:
            continue
        rule = snapshot.destination_rule_for(proxy, service)
        subsets = [""] + [get_str(s, "name") for s in get_list(get(rule, "spec"), "subsets")]
        for port in service.ports:
            if port.protocol == "UDP":
                continue
            for subset in subsets:
                cluster, cla = service_cluster(service, port, subset, proxy, rule, templates, auto)
                clusters.append(cluster)
                if cla is not None:
                    assignments.append(cla)
    return clusters, assignments
