"""Alibaba Cloud Service Mesh kinds (``istio.alibabacloud.com``): IstioGateway and
ASMEgressTrafficPolicy.

Rules of this module:
- Field names are the JSON tags of aliyun/alibabacloud-servicemesh-api (reference §1.1,
  §1.2). Unknown fields are errors, as for Istio kinds; fields that hold free-form
  Kubernetes structures (resources, affinity, tolerations...) are kept as written.
- ``IstioGateway.spec.ports`` is a list of Kubernetes ServicePorts: the gateway Service's
  ports, whose ``targetPort`` is what the gateway listens on.
- ASMEgressTrafficPolicy's ``to[].port`` is an Istio ``Port`` (number, protocol, name).
- v1beta1 is the version the ASM docs use, so it is the one we emit.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from meshgate.api.kinds.istio_networking import Port
from meshgate.api.kinds.kubernetes import ServicePort as KubeServicePort
from meshgate.api.kinds.types import IstioWire, UInt32
from meshgate.api.meta import Resource
from meshgate.api.registry import KindInfo, register

GROUP = "istio.alibabacloud.com"
VERSIONS = ("v1beta1", "v1")

GatewayType = Literal["ingress", "egress", "cross-network"]


class TargetUtilization(IstioWire):
    target_average_utilization: int | None = None


class KernelSettings(IstioWire):
    enabled: bool | None = None
    parameters: dict[str, str] | None = None


class ReadinessProbe(IstioWire):
    failure_threshold: int | None = None
    period_seconds: int | None = None
    success_threshold: int | None = None


class SecretVolume(IstioWire):
    name: str | None = None
    secret_name: str | None = None
    mount_path: str | None = None


class ConfigVolume(IstioWire):
    name: str | None = None
    config_map_name: str | None = None
    mount_path: str | None = None


class GatewayBasicConfiguration(IstioWire):
    """The inline basic configuration of an IstioGateway (also each ``overrides`` value)."""

    replica_count: int | None = Field(default=None, ge=0)
    autoscale_enabled: bool | None = None
    min_replicas: int | None = Field(default=None, ge=0)
    max_replicas: int | None = Field(default=None, ge=0)
    service_type: Literal["ClusterIP", "NodePort", "LoadBalancer"] | None = None
    load_balancer_class: str | None = None
    load_balancer_ip: str | None = Field(default=None, alias="loadBalancerIP")
    external_traffic_policy: Literal["Cluster", "Local"] | None = None
    service_annotations: dict[str, str] | None = None
    pod_annotations: dict[str, str] | None = None
    service_labels: dict[str, str] | None = None
    pod_labels: dict[str, str] | None = None
    sds: dict[str, Any] | None = None
    resources: dict[str, Any] | None = None
    env: dict[str, str] | None = None
    ports: list[KubeServicePort] | None = None
    mesh_expansion_ports: list[KubeServicePort] | None = None
    node_selector: dict[str, str] | None = None
    affinity: dict[str, Any] | None = None
    tolerations: list[dict[str, Any]] | None = None
    secret_volumes: list[SecretVolume] | None = None
    config_volumes: list[ConfigVolume] | None = None
    rolling_max_surge: int | str | None = None
    rolling_max_unavailable: int | str | None = None
    cpu: TargetUtilization | None = None
    memory: TargetUtilization | None = None
    kernel: KernelSettings | None = None
    compression: dict[str, Any] | None = None
    run_as_root: bool | None = None
    lifecycle: dict[str, Any] | None = None
    readiness_probe: ReadinessProbe | None = None
    host_network: bool | None = None
    dns_policy: str | None = None
    auto_create_gateway_yaml: bool | None = None
    disable_container_port_exposed: bool | None = None


class IstioGatewaySpec(GatewayBasicConfiguration):
    gateway_type: GatewayType
    cluster_ids: list[str] | None = None
    overrides: dict[str, GatewayBasicConfiguration] | None = None

    @property
    def effective_replica_count(self) -> int:
        return 1 if self.replica_count is None else self.replica_count


class IstioGateway(Resource):
    model_config = ConfigDict(strict=True)
    spec: IstioGatewaySpec


# --- ASMEgressTrafficPolicy ------------------------------------------------------------


class ByEgressGateway(IstioWire):
    name: str | None = None
    port: UInt32 | None = Field(default=None, le=65535)


class EgressFrom(IstioWire):
    namespace: str
    workload_selector: dict[str, str] | None = None


class HttpsUpgrade(IstioWire):
    enabled: bool | None = None
    port: UInt32 | None = Field(default=None, le=65535)


class EgressTo(IstioWire):
    name: str | None = None
    hosts: list[str] = Field(min_length=1, max_length=50)
    port: Port
    by_egress_gateway: ByEgressGateway | None = None
    https_upgrade: HttpsUpgrade | None = None


class EgressRule(IstioWire):
    name: str | None = None
    from_: list[EgressFrom] = Field(alias="from", min_length=1)
    to: list[EgressTo] = Field(min_length=1)


class EgressTrafficPolicySpec(IstioWire):
    by_egress_gateway: ByEgressGateway
    egress_rules: list[EgressRule] = Field(min_length=1)


class ASMEgressTrafficPolicy(Resource):
    model_config = ConfigDict(strict=True)
    spec: EgressTrafficPolicySpec


register(
    KindInfo(
        group=GROUP,
        kind="IstioGateway",
        versions=VERSIONS,
        plural="istiogateways",
        singular="istiogateway",
        short_names=(),
        namespaced=True,
        model=IstioGateway,
    )
)
register(
    KindInfo(
        group=GROUP,
        kind="ASMEgressTrafficPolicy",
        versions=VERSIONS,
        plural="asmegresstrafficpolicies",
        singular="asmegresstrafficpolicy",
        short_names=(),
        namespaced=True,
        model=ASMEgressTrafficPolicy,
    )
)
