"""meshgate's own kinds (``meshgate.io/v1alpha1``): MeshConfig.

Rules of this module:
- MeshConfig is cluster-scoped and a singleton named ``default`` (the name rule is checked
  in ``meshgate.validation``); it holds the mesh-wide settings Istio keeps in its
  ``meshConfig`` (outbound traffic policy, access logs, default retries, root namespace,
  trust domain, connect timeout) and one of meshgate's own: ``egressEnforcement``
  (``OFF`` or ``GATEWAY_ONLY``: whether the node lets only gateway pods out of the mesh),
  and ``gatewaySsrfGuard`` (true by default: gateways may not reach the mesh's insides),
  and ``xdsMode`` (``DELTA``, the default as in Istio since 1.22, or ``SOTW``: which ADS
  flavour proxies started from then on speak; a pod's ``meshgate.io/xds-mode`` annotation
  overrides it).
  It also holds the mesh-wide outbound capture Istio sets at install time
  (``includeIPRanges``, ``excludeIPRanges``, ``includeOutboundPorts``,
  ``excludeOutboundPorts``: see ``meshgate.api.annotations``).
- Fields the user omitted stay ``None`` on the wire; the ``effective_*`` properties give
  the values the mesh runs with (ALLOW_ANY, istio-system, cluster.local, 10s...).
- Unknown fields are errors.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, ConfigDict, Field

from meshgate.api.kinds.istio_networking import HTTPRetry
from meshgate.api.kinds.types import Duration, IstioWire
from meshgate.api.meta import Resource
from meshgate.api.registry import KindInfo, register

GROUP = "meshgate.io"
VERSIONS = ("v1alpha1",)
MESH_CONFIG_NAME = "default"
# The retry conditions of the mesh's default HTTP retry policy: Istio's own, plus
# ``reset-before-request`` (a departure from Istio; docs/services.md "Retries"). Envoy retries
# on it only when the upstream connection was reset before the request's headers were sent,
# so the request never reached the upstream and a retry cannot repeat it, whatever its
# method. It is what makes a gateway replica killed under load invisible: a request
# dispatched onto a pooled connection to the Envoy that just died goes to another replica.
DEFAULT_RETRY_ON = "connect-failure,refused-stream,unavailable,cancelled,reset-before-request"

OutboundMode = Literal["ALLOW_ANY", "REGISTRY_ONLY"]
AccessLogEncoding = Literal["JSON", "TEXT"]
EgressEnforcement = Literal["OFF", "GATEWAY_ONLY"]
XdsMode = Literal["SOTW", "DELTA"]


def _yaml_off(value: object) -> object:
    # YAML 1.1 (PyYAML, and Kubernetes' own YAML reader) reads a bare OFF as false: the
    # user wrote the enum value, so take it as such rather than refuse it.
    return "OFF" if value is False else value


class MeshOutboundTrafficPolicy(IstioWire):
    mode: OutboundMode | None = None


class MeshConfigSpec(IstioWire):
    outbound_traffic_policy: MeshOutboundTrafficPolicy | None = None
    access_log_file: str | None = None
    access_log_encoding: AccessLogEncoding | None = None
    access_log_format: str | None = None
    default_http_retry_policy: HTTPRetry | None = None
    root_namespace: str | None = None
    trust_domain: str | None = None
    connect_timeout: Duration | None = None
    egress_enforcement: Annotated[EgressEnforcement | None, BeforeValidator(_yaml_off)] = None
    # Istio's MeshConfig field: sidecars send mesh mTLS to endpoints that have a proxy
    # (label security.istio.io/tlsMode: istio) where no DestinationRule sets tls.
    enable_auto_mtls: bool | None = None
    # meshgate's own: gateway proxies may not connect to loopback, link-local or the mesh's
    # own addresses unless configured by address (docs/security.md, the SSRF guard).
    gateway_ssrf_guard: bool | None = None
    # Istio's: the exportTo of a ServiceEntry or Service, VirtualService, DestinationRule
    # that sets none ("*" all, "." its own namespace, "~" none, or namespace names).
    default_service_export_to: list[str] | None = None
    default_virtual_service_export_to: list[str] | None = None
    default_destination_rule_export_to: list[str] | None = None
    # Istio's field (default false there, true here): every proxy also streams its access
    # log to the control plane's access-log service (docs/observability.md). Off, the
    # mesh-wide log is filled from the local proxies' own log files alone (about a second
    # later; proxies on other hosts are then not in it).
    enable_envoy_access_log_service: bool | None = None
    # meshgate's own (Istio's ISTIO_DELTA_XDS proxy setting): state-of-the-world or
    # incremental ADS for proxies started after it is set (a running proxy keeps its own).
    xds_mode: XdsMode | None = None
    # Istio's install values values.global.proxy.includeIPRanges, excludeIPRanges,
    # includeOutboundPorts and excludeOutboundPorts, as written there (comma-separated;
    # includeIPRanges "*" for all): the outbound capture of a sidecar pod that carries no
    # traffic.sidecar.istio.io annotation for it, read when the pod starts.
    include_ip_ranges: str | None = Field(default=None, alias="includeIPRanges")
    exclude_ip_ranges: str | None = Field(default=None, alias="excludeIPRanges")
    include_outbound_ports: str | None = None
    exclude_outbound_ports: str | None = None

    @property
    def effective_outbound_mode(self) -> OutboundMode:
        policy = self.outbound_traffic_policy
        return (policy.mode if policy else None) or "ALLOW_ANY"

    @property
    def access_log_enabled(self) -> bool:
        return bool(self.access_log_file)

    @property
    def effective_envoy_access_log_service(self) -> bool:
        return self.enable_envoy_access_log_service is not False

    @property
    def effective_egress_enforcement(self) -> EgressEnforcement:
        # OFF by default, so Istio's tasks that send some pods straight out work as on Istio.
        return self.egress_enforcement or "OFF"

    @property
    def effective_access_log_encoding(self) -> AccessLogEncoding:
        # ASM (and the seed's gateway log) use JSON; Istio's own default would be TEXT.
        return self.access_log_encoding or "JSON"

    @property
    def effective_xds_mode(self) -> XdsMode:
        return self.xds_mode or "DELTA"

    @property
    def effective_root_namespace(self) -> str:
        return self.root_namespace or "istio-system"

    @property
    def effective_trust_domain(self) -> str:
        return self.trust_domain or "cluster.local"

    @property
    def effective_connect_timeout(self) -> str:
        return self.connect_timeout or "10s"

    @property
    def effective_default_http_retry_policy(self) -> HTTPRetry:
        """Istio's default when unset: 2 attempts on connection-level failures (and on
        ``reset-before-request``: ``DEFAULT_RETRY_ON``)."""
        if self.default_http_retry_policy is not None:
            return self.default_http_retry_policy
        return HTTPRetry(attempts=2, retry_on=DEFAULT_RETRY_ON)


class MeshConfig(Resource):
    model_config = ConfigDict(strict=True)
    spec: MeshConfigSpec = Field(default_factory=MeshConfigSpec)


register(
    KindInfo(
        group=GROUP,
        kind="MeshConfig",
        versions=VERSIONS,
        plural="meshconfigs",
        singular="meshconfig",
        short_names=(),
        namespaced=False,
        model=MeshConfig,
    )
)
