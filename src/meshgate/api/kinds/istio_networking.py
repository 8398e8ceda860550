"""Istio ``networking.istio.io`` kinds: ServiceEntry, Gateway, VirtualService,
DestinationRule, Sidecar.

Rules of this module:
- One schema for v1, v1beta1 and v1alpha3 (as upstream); v1 is the version we emit.
- Every field of istio/api ``networking/v1alpha3/*.proto`` is modelled. Attributes are the
  proto field names; wire names are the proto JSON names (camelCase; explicit aliases
  where ``to_camel`` would differ, e.g. ``consecutive5xxErrors``).
- Proto enums are ``Literal`` strings; proto oneofs are declared in ``_oneofs``; durations
  are ``Duration`` strings. Unknown fields are errors.
- Everything optional defaults to ``None``, never to the effective value: the stored wire
  form is what the user wrote. Effective values (the ``effective_*`` properties and
  ``meshgate.api.defaults``) are computed on read.
- Cross-field rules that need a message of their own (host syntax, weights, resolution vs
  endpoints...) live in ``meshgate.validation``, not here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from meshgate.api.kinds.types import Duration, Int32, IstioWire, UInt32
from meshgate.api.meta import Resource
from meshgate.api.registry import KindInfo, register

GROUP = "networking.istio.io"
VERSIONS = ("v1", "v1beta1", "v1alpha3")


class _IstioResource(Resource):
    model_config = ConfigDict(strict=True)


# --- shared messages -------------------------------------------------------------------


class WorkloadSelector(IstioWire):
    labels: dict[str, str] | None = None


class TypeWorkloadSelector(IstioWire):
    """istio.type.v1beta1.WorkloadSelector (``matchLabels``), as DestinationRule uses it."""

    match_labels: dict[str, str] | None = None


class PortSelector(IstioWire):
    number: UInt32 | None = None


class Destination(IstioWire):
    host: str
    subset: str | None = None
    port: PortSelector | None = None


class Percent(IstioWire):
    value: float | None = None


class StringMatch(IstioWire):
    """exact | prefix | regex (RE2). None set is a presence match (headers, query params)."""

    _oneofs = ((("exact", "prefix", "regex"), False),)
    exact: str | None = None
    prefix: str | None = None
    regex: str | None = None

    @property
    def is_presence(self) -> bool:
        return self.exact is None and self.prefix is None and self.regex is None


# --- ServiceEntry ----------------------------------------------------------------------

Location = Literal["MESH_EXTERNAL", "MESH_INTERNAL"]
Resolution = Literal["NONE", "STATIC", "DNS", "DNS_ROUND_ROBIN", "DYNAMIC_DNS"]


class ServicePort(IstioWire):
    number: UInt32
    protocol: str | None = None
    name: str
    target_port: UInt32 | None = None


class WorkloadEntry(IstioWire):
    address: str | None = None
    ports: dict[str, UInt32] | None = None
    labels: dict[str, str] | None = None
    network: str | None = None
    locality: str | None = None
    weight: UInt32 | None = None
    service_account: str | None = None


class ServiceEntrySpec(IstioWire):
    hosts: list[str]
    addresses: list[str] | None = None
    ports: list[ServicePort] | None = None
    location: Location | None = None
    resolution: Resolution | None = None
    endpoints: list[WorkloadEntry] | None = None
    workload_selector: WorkloadSelector | None = None
    export_to: list[str] | None = None
    subject_alt_names: list[str] | None = None

    @property
    def effective_location(self) -> Location:
        return self.location or "MESH_EXTERNAL"

    @property
    def effective_resolution(self) -> Resolution:
        return self.resolution or "NONE"


class ServiceEntry(_IstioResource):
    spec: ServiceEntrySpec


# --- Gateway ---------------------------------------------------------------------------

ServerTLSMode = Literal[
    "PASSTHROUGH", "SIMPLE", "MUTUAL", "AUTO_PASSTHROUGH", "ISTIO_MUTUAL", "OPTIONAL_MUTUAL"
]
TLSProtocol = Literal["TLS_AUTO", "TLSV1_0", "TLSV1_1", "TLSV1_2", "TLSV1_3"]


class Port(IstioWire):
    number: UInt32
    protocol: str
    name: str | None = None
    target_port: UInt32 | None = None


class TLSCertificate(IstioWire):
    server_certificate: str | None = None
    private_key: str | None = None
    ca_certificates: str | None = None


class ServerTLSSettings(IstioWire):
    https_redirect: bool | None = None
    mode: ServerTLSMode | None = None
    server_certificate: str | None = None
    private_key: str | None = None
    ca_certificates: str | None = None
    ca_crl: str | None = None
    credential_name: str | None = None
    credential_names: list[str] | None = None
    ca_cert_credential_name: str | None = None
    tls_certificates: list[TLSCertificate] | None = None
    subject_alt_names: list[str] | None = None
    verify_certificate_spki: list[str] | None = None
    verify_certificate_hash: list[str] | None = None
    min_protocol_version: TLSProtocol | None = None
    max_protocol_version: TLSProtocol | None = None
    cipher_suites: list[str] | None = None

    @property
    def effective_mode(self) -> ServerTLSMode:
        return self.mode or "PASSTHROUGH"


class Server(IstioWire):
    port: Port
    bind: str | None = None
    hosts: list[str] | None = None
    tls: ServerTLSSettings | None = None
    default_endpoint: str | None = None
    name: str | None = None


class GatewaySpec(IstioWire):
    servers: list[Server]
    selector: dict[str, str] | None = None


class Gateway(_IstioResource):
    spec: GatewaySpec


# --- VirtualService --------------------------------------------------------------------


class HeaderOperations(IstioWire):
    set: dict[str, str] | None = None
    add: dict[str, str] | None = None
    remove: list[str] | None = None


class Headers(IstioWire):
    request: HeaderOperations | None = None
    response: HeaderOperations | None = None


class HTTPMatchRequest(IstioWire):
    name: str | None = None
    uri: StringMatch | None = None
    scheme: StringMatch | None = None
    method: StringMatch | None = None
    authority: StringMatch | None = None
    headers: dict[str, StringMatch] | None = None
    port: UInt32 | None = None
    source_labels: dict[str, str] | None = None
    gateways: list[str] | None = None
    query_params: dict[str, StringMatch] | None = None
    ignore_uri_case: bool | None = None
    without_headers: dict[str, StringMatch] | None = None
    source_namespace: str | None = None
    stat_prefix: str | None = None


class HTTPRouteDestination(IstioWire):
    destination: Destination
    weight: Int32 | None = None
    headers: Headers | None = None


class RouteDestination(IstioWire):
    destination: Destination
    weight: Int32 | None = None


class Delegate(IstioWire):
    name: str | None = None
    namespace: str | None = None


RedirectPortSelection = Literal["FROM_PROTOCOL_DEFAULT", "FROM_REQUEST_PORT"]


class HTTPRedirect(IstioWire):
    _oneofs = ((("port", "derive_port"), False),)
    uri: str | None = None
    authority: str | None = None
    port: UInt32 | None = None
    derive_port: RedirectPortSelection | None = None
    scheme: str | None = None
    redirect_code: UInt32 | None = None


class HTTPBody(IstioWire):
    _oneofs = ((("string", "bytes"), False),)
    string: str | None = None
    bytes: str | None = None  # base64, as protobuf JSON writes bytes


class HTTPDirectResponse(IstioWire):
    status: UInt32
    body: HTTPBody | None = None


class RegexRewrite(IstioWire):
    match: str | None = None
    rewrite: str | None = None


class HTTPRewrite(IstioWire):
    uri: str | None = None
    authority: str | None = None
    uri_regex_rewrite: RegexRewrite | None = None


class HTTPRetry(IstioWire):
    attempts: Int32 | None = None
    per_try_timeout: Duration | None = None
    retry_on: str | None = None
    retry_remote_localities: bool | None = None
    retry_ignore_previous_hosts: bool | None = None
    backoff: Duration | None = None


class FaultDelay(IstioWire):
    """HTTPFaultInjection.Delay."""

    _oneofs = ((("fixed_delay", "exponential_delay"), False),)
    percent: Int32 | None = None  # deprecated upstream, still accepted
    fixed_delay: Duration | None = None
    exponential_delay: Duration | None = None
    percentage: Percent | None = None


class FaultAbort(IstioWire):
    """HTTPFaultInjection.Abort."""

    _oneofs = ((("http_status", "grpc_status", "http2_error"), False),)
    http_status: Int32 | None = None
    grpc_status: str | None = None
    http2_error: str | None = None
    percentage: Percent | None = None


class HTTPFaultInjection(IstioWire):
    delay: FaultDelay | None = None
    abort: FaultAbort | None = None


# The proto nests these as HTTPFaultInjection.Delay / .Abort.
Delay = FaultDelay
Abort = FaultAbort


class HTTPMirrorPolicy(IstioWire):
    destination: Destination
    percentage: Percent | None = None


UnmatchedPreflights = Literal["UNSPECIFIED", "FORWARD", "IGNORE"]


class CorsPolicy(IstioWire):
    allow_origin: list[str] | None = None  # deprecated upstream
    allow_origins: list[StringMatch] | None = None
    allow_methods: list[str] | None = None
    allow_headers: list[str] | None = None
    expose_headers: list[str] | None = None
    max_age: Duration | None = None
    allow_credentials: bool | None = None
    unmatched_preflights: UnmatchedPreflights | None = None


class HTTPRoute(IstioWire):
    name: str | None = None
    match: list[HTTPMatchRequest] | None = None
    route: list[HTTPRouteDestination] | None = None
    redirect: HTTPRedirect | None = None
    direct_response: HTTPDirectResponse | None = None
    delegate: Delegate | None = None
    rewrite: HTTPRewrite | None = None
    timeout: Duration | None = None
    retries: HTTPRetry | None = None
    fault: HTTPFaultInjection | None = None
    mirror: Destination | None = None
    mirrors: list[HTTPMirrorPolicy] | None = None
    mirror_percent: UInt32 | None = None  # deprecated upstream
    mirror_percentage: Percent | None = None
    cors_policy: CorsPolicy | None = None
    headers: Headers | None = None


class TLSMatchAttributes(IstioWire):
    sni_hosts: list[str]
    destination_subnets: list[str] | None = None
    port: UInt32 | None = None
    source_labels: dict[str, str] | None = None
    gateways: list[str] | None = None
    source_namespace: str | None = None


class TLSRoute(IstioWire):
    match: list[TLSMatchAttributes]
    route: list[RouteDestination] | None = None


class L4MatchAttributes(IstioWire):
    destination_subnets: list[str] | None = None
    port: UInt32 | None = None
    source_subnet: str | None = None  # hidden upstream, still in the proto
    source_labels: dict[str, str] | None = None
    gateways: list[str] | None = None
    source_namespace: str | None = None


class TCPRoute(IstioWire):
    match: list[L4MatchAttributes] | None = None
    route: list[RouteDestination] | None = None


class VirtualServiceSpec(IstioWire):
    hosts: list[str] | None = None
    gateways: list[str] | None = None
    http: list[HTTPRoute] | None = None
    tls: list[TLSRoute] | None = None
    tcp: list[TCPRoute] | None = None
    export_to: list[str] | None = None

    @property
    def effective_gateways(self) -> list[str]:
        """Omitted gateways mean the sidecars (``mesh``)."""
        return list(self.gateways) if self.gateways else ["mesh"]


class VirtualService(_IstioResource):
    spec: VirtualServiceSpec


# --- DestinationRule -------------------------------------------------------------------

SimpleLB = Literal[
    "UNSPECIFIED", "LEAST_CONN", "RANDOM", "PASSTHROUGH", "ROUND_ROBIN", "LEAST_REQUEST"
]
H2UpgradePolicy = Literal["DEFAULT", "DO_NOT_UPGRADE", "UPGRADE"]
ClientTLSMode = Literal["DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL"]


class HTTPCookieAttribute(IstioWire):
    name: str
    value: str | None = None


class HTTPCookie(IstioWire):
    name: str
    path: str | None = None
    ttl: Duration | None = None
    attributes: list[HTTPCookieAttribute] | None = None


class RingHash(IstioWire):
    minimum_ring_size: int | None = Field(default=None, ge=0)


class MagLev(IstioWire):
    table_size: int | None = Field(default=None, ge=0)


class ConsistentHashLB(IstioWire):
    _oneofs = (
        (("http_header_name", "http_cookie", "use_source_ip", "http_query_parameter_name"), False),
        (("ring_hash", "maglev"), False),
    )
    http_header_name: str | None = None
    http_cookie: HTTPCookie | None = None
    use_source_ip: bool | None = None
    http_query_parameter_name: str | None = None
    ring_hash: RingHash | None = None
    maglev: MagLev | None = None
    minimum_ring_size: int | None = Field(default=None, ge=0)  # deprecated upstream


class LocalityDistribute(IstioWire):
    from_: str | None = Field(default=None, alias="from")
    to: dict[str, UInt32] | None = None


class LocalityFailover(IstioWire):
    from_: str | None = Field(default=None, alias="from")
    to: str | None = None


class LocalityLoadBalancerSetting(IstioWire):
    distribute: list[LocalityDistribute] | None = None
    failover: list[LocalityFailover] | None = None
    failover_priority: list[str] | None = None
    enabled: bool | None = None


class WarmupConfiguration(IstioWire):
    duration: Duration
    minimum_percent: float | None = None
    aggression: float | None = None


class LoadBalancerSettings(IstioWire):
    _oneofs = ((("simple", "consistent_hash"), False),)
    simple: SimpleLB | None = None
    consistent_hash: ConsistentHashLB | None = None
    locality_lb_setting: LocalityLoadBalancerSetting | None = None
    warmup_duration_secs: Duration | None = None  # deprecated upstream
    warmup: WarmupConfiguration | None = None


class TcpKeepalive(IstioWire):
    probes: UInt32 | None = None
    time: Duration | None = None
    interval: Duration | None = None


class TCPSettings(IstioWire):
    max_connections: Int32 | None = None
    connect_timeout: Duration | None = None
    tcp_keepalive: TcpKeepalive | None = None
    max_connection_duration: Duration | None = None
    idle_timeout: Duration | None = None


class HTTPSettings(IstioWire):
    http1_max_pending_requests: Int32 | None = None
    http2_max_requests: Int32 | None = None
    max_requests_per_connection: Int32 | None = None
    max_retries: Int32 | None = None
    idle_timeout: Duration | None = None
    h2_upgrade_policy: H2UpgradePolicy | None = None
    use_client_protocol: bool | None = None
    max_concurrent_streams: Int32 | None = None


class ConnectionPoolSettings(IstioWire):
    tcp: TCPSettings | None = None
    http: HTTPSettings | None = None


class OutlierDetection(IstioWire):
    consecutive_errors: Int32 | None = None  # deprecated upstream
    split_external_local_origin_errors: bool | None = None
    consecutive_local_origin_failures: UInt32 | None = None
    consecutive_gateway_errors: UInt32 | None = None
    consecutive_5xx_errors: UInt32 | None = Field(default=None, alias="consecutive5xxErrors")
    interval: Duration | None = None
    base_ejection_time: Duration | None = None
    max_ejection_percent: Int32 | None = None
    min_health_percent: Int32 | None = None


class ClientTLSSettings(IstioWire):
    mode: ClientTLSMode | None = None
    client_certificate: str | None = None
    private_key: str | None = None
    ca_certificates: str | None = None
    credential_name: str | None = None
    subject_alt_names: list[str] | None = None
    sni: str | None = None
    insecure_skip_verify: bool | None = None
    ca_crl: str | None = None

    @property
    def effective_mode(self) -> ClientTLSMode:
        return self.mode or "DISABLE"


class PortTrafficPolicy(IstioWire):
    """TrafficPolicy.PortTrafficPolicy: replaces (does not merge with) the outer policy."""

    port: PortSelector | None = None
    load_balancer: LoadBalancerSettings | None = None
    connection_pool: ConnectionPoolSettings | None = None
    outlier_detection: OutlierDetection | None = None
    tls: ClientTLSSettings | None = None


class TunnelSettings(IstioWire):
    protocol: Literal["CONNECT", "POST"] | None = None
    target_host: str
    target_port: UInt32


class ProxyProtocol(IstioWire):
    version: Literal["V1", "V2"] | None = None


class RetryBudget(IstioWire):
    percent: Percent | None = None
    min_retry_concurrency: UInt32 | None = None


class TrafficPolicy(IstioWire):
    load_balancer: LoadBalancerSettings | None = None
    connection_pool: ConnectionPoolSettings | None = None
    outlier_detection: OutlierDetection | None = None
    tls: ClientTLSSettings | None = None
    port_level_settings: list[PortTrafficPolicy] | None = None
    tunnel: TunnelSettings | None = None
    proxy_protocol: ProxyProtocol | None = None
    retry_budget: RetryBudget | None = None


class Subset(IstioWire):
    name: str
    labels: dict[str, str] | None = None
    traffic_policy: TrafficPolicy | None = None


class DestinationRuleSpec(IstioWire):
    host: str
    traffic_policy: TrafficPolicy | None = None
    subsets: list[Subset] | None = None
    export_to: list[str] | None = None
    workload_selector: TypeWorkloadSelector | None = None


class DestinationRule(_IstioResource):
    spec: DestinationRuleSpec


# --- Sidecar ---------------------------------------------------------------------------

CaptureMode = Literal["DEFAULT", "IPTABLES", "NONE"]
OutboundMode = Literal["REGISTRY_ONLY", "ALLOW_ANY"]


class SidecarPort(IstioWire):
    number: UInt32 | None = None
    protocol: str | None = None
    name: str | None = None
    target_port: UInt32 | None = None


class IstioIngressListener(IstioWire):
    port: SidecarPort
    bind: str | None = None
    capture_mode: CaptureMode | None = None
    default_endpoint: str | None = None
    tls: ServerTLSSettings | None = None
    connection_pool: ConnectionPoolSettings | None = None


class IstioEgressListener(IstioWire):
    port: SidecarPort | None = None
    bind: str | None = None
    capture_mode: CaptureMode | None = None
    hosts: list[str]


class OutboundTrafficPolicy(IstioWire):
    mode: OutboundMode | None = None
    egress_proxy: Destination | None = None


class SidecarSpec(IstioWire):
    workload_selector: WorkloadSelector | None = None
    ingress: list[IstioIngressListener] | None = None
    egress: list[IstioEgressListener] | None = None
    inbound_connection_pool: ConnectionPoolSettings | None = None
    outbound_traffic_policy: OutboundTrafficPolicy | None = None


class Sidecar(_IstioResource):
    spec: SidecarSpec = Field(default_factory=SidecarSpec)


# --- registration ----------------------------------------------------------------------

for _kind, _plural, _shorts, _model in (
    ("ServiceEntry", "serviceentries", ("se",), ServiceEntry),
    ("Gateway", "gateways", ("gw",), Gateway),
    ("VirtualService", "virtualservices", ("vs",), VirtualService),
    ("DestinationRule", "destinationrules", ("dr",), DestinationRule),
    ("Sidecar", "sidecars", (), Sidecar),
):
    register(
        KindInfo(
            group=GROUP,
            kind=_kind,
            versions=VERSIONS,
            plural=_plural,
            singular=_kind.lower(),
            short_names=_shorts,
            namespaced=True,
            model=_model,
        )
    )
