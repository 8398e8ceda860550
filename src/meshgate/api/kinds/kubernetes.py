"""Kubernetes kinds meshgate runs or reads: core v1 Namespace, ServiceAccount, Service,
Pod, ConfigMap, Secret, Endpoints, Node; apps/v1 Deployment; networking.k8s.io/v1 NetworkPolicy;
discovery.k8s.io/v1 EndpointSlice.

Rules of this module:
- Only the fields meshgate acts on are typed; every other field is kept as written
  (``KubeWire`` is open), so Kubernetes YAML from anywhere applies and round-trips.
- Typed fields are strict: ``port: "80"`` is an error, as the API server says.
- Wire names follow Kubernetes spelling, including its acronyms (``clusterIP``,
  ``podIP``): aliases are explicit where ``to_camel`` would differ.
- Kubernetes defaulting (Service port protocol/targetPort, Deployment replicas...) is
  done by ``meshgate.api.defaults``, not by model defaults.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from meshgate.api.kinds.types import Int32, IntOrString, KubeWire
from meshgate.api.meta import ObjectMeta, Resource
from meshgate.api.registry import KindInfo, register

Protocol = Literal["TCP", "UDP", "SCTP"]


class _KubeResource(Resource):
    # Top-level fields we do not type (e.g. ``automountServiceAccountToken``) are kept.
    model_config = ConfigDict(extra="allow", strict=True)


# --- core/v1 shared --------------------------------------------------------------------


class KeyToPath(KubeWire):
    key: str
    path: str
    mode: Int32 | None = None


class SecretVolumeSource(KubeWire):
    secret_name: str | None = None
    optional: bool | None = None
    items: list[KeyToPath] | None = None
    default_mode: Int32 | None = None


class ConfigMapVolumeSource(KubeWire):
    name: str | None = None
    optional: bool | None = None
    items: list[KeyToPath] | None = None
    default_mode: Int32 | None = None


class EmptyDirVolumeSource(KubeWire):
    medium: Literal["", "Memory"] | None = None
    size_limit: IntOrString | None = None


class Volume(KubeWire):
    name: str
    secret: SecretVolumeSource | None = None
    config_map: ConfigMapVolumeSource | None = None
    empty_dir: EmptyDirVolumeSource | None = None


class VolumeMount(KubeWire):
    name: str
    mount_path: str
    read_only: bool | None = None
    sub_path: str | None = None


class EnvVar(KubeWire):
    name: str
    value: str | None = None


class ContainerPort(KubeWire):
    name: str | None = None
    container_port: Int32
    protocol: Protocol | None = None
    host_port: Int32 | None = None
    host_ip: str | None = Field(default=None, alias="hostIP")


class SecurityContext(KubeWire):
    run_as_user: int | None = None
    run_as_group: int | None = None
    run_as_non_root: bool | None = None
    privileged: bool | None = None
    read_only_root_filesystem: bool | None = None
    allow_privilege_escalation: bool | None = None


class PodSecurityContext(KubeWire):
    run_as_user: int | None = None
    run_as_group: int | None = None
    run_as_non_root: bool | None = None
    fs_group: int | None = None
    supplemental_groups: list[int] | None = None


class Container(KubeWire):
    name: str
    image: str | None = None
    command: list[str] | None = None
    args: list[str] | None = None
    working_dir: str | None = None
    env: list[EnvVar] | None = None
    ports: list[ContainerPort] | None = None
    security_context: SecurityContext | None = None
    volume_mounts: list[VolumeMount] | None = None
    image_pull_policy: Literal["Always", "Never", "IfNotPresent"] | None = None


class Toleration(KubeWire):
    """What taint a pod tolerates (server/eviction.py acts on NoExecute ones)."""

    key: str | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None


class PodSpec(KubeWire):
    containers: list[Container]
    init_containers: list[Container] | None = None
    volumes: list[Volume] | None = None
    service_account_name: str | None = None
    service_account: str | None = None  # deprecated alias of serviceAccountName
    security_context: PodSecurityContext | None = None
    termination_grace_period_seconds: int | None = None
    restart_policy: Literal["Always", "OnFailure", "Never"] | None = None
    node_name: str | None = None
    tolerations: list[Toleration] | None = None
    host_network: bool | None = None
    hostname: str | None = None
    subdomain: str | None = None
    share_process_namespace: bool | None = None


class PodIP(KubeWire):
    ip: str


class PodStatus(KubeWire):
    phase: str | None = None
    message: str | None = None
    reason: str | None = None
    host_ip: str | None = Field(default=None, alias="hostIP")
    pod_ip: str | None = Field(default=None, alias="podIP")
    pod_ips: list[PodIP] | None = Field(default=None, alias="podIPs")
    start_time: str | None = None


class LabelSelectorRequirement(KubeWire):
    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str] | None = None


class LabelSelector(KubeWire):
    match_labels: dict[str, str] | None = None
    match_expressions: list[LabelSelectorRequirement] | None = None

    def matches(self, labels: dict[str, str]) -> bool:
        """Kubernetes label-selector semantics; an empty selector matches everything."""
        for key, value in (self.match_labels or {}).items():
            if labels.get(key) != value:
                return False
        for req in self.match_expressions or []:
            present = req.key in labels
            values = req.values or []
            if req.operator == "In" and not (present and labels[req.key] in values):
                return False
            if req.operator == "NotIn" and present and labels[req.key] in values:
                return False
            if req.operator == "Exists" and not present:
                return False
            if req.operator == "DoesNotExist" and present:
                return False
        return True


class PodTemplateSpec(KubeWire):
    # Optional, not defaulted: an ObjectMeta default would emit ``name: ""`` on the wire.
    metadata: ObjectMeta | None = None
    spec: PodSpec

    @property
    def labels(self) -> dict[str, str]:
        return (self.metadata.labels if self.metadata else None) or {}


# --- kinds -----------------------------------------------------------------------------


class NamespaceSpec(KubeWire):
    finalizers: list[str] | None = None


class Namespace(_KubeResource):
    spec: NamespaceSpec | None = None


class NodeSpec(KubeWire):
    pod_cidr: str | None = Field(default=None, alias="podCIDR")
    unschedulable: bool | None = None


class Node(_KubeResource):
    """A machine pods run on (cluster-scoped): the control plane's own, or one that
    joined (``meshgate join``); its status is the node's to write."""

    spec: NodeSpec | None = None


class ObjectReference(KubeWire):
    name: str | None = None


class ServiceAccount(_KubeResource):
    secrets: list[ObjectReference] | None = None
    image_pull_secrets: list[ObjectReference] | None = None
    automount_service_account_token: bool | None = None


class ServicePort(KubeWire):
    name: str | None = None
    port: Int32
    target_port: IntOrString | None = None
    protocol: Protocol | None = None
    app_protocol: str | None = None
    node_port: Int32 | None = None


class ServiceSpec(KubeWire):
    ports: list[ServicePort] | None = None
    selector: dict[str, str] | None = None
    cluster_ip: str | None = Field(default=None, alias="clusterIP")
    cluster_ips: list[str] | None = Field(default=None, alias="clusterIPs")
    type: Literal["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"] | None = None
    external_name: str | None = None


class Service(_KubeResource):
    spec: ServiceSpec = Field(default_factory=ServiceSpec)


class Pod(_KubeResource):
    spec: PodSpec
    status: PodStatus | None = None  # type: ignore[assignment]


class ConfigMap(_KubeResource):
    data: dict[str, str] | None = None
    binary_data: dict[str, str] | None = None
    immutable: bool | None = None


class Secret(_KubeResource):
    data: dict[str, str] | None = None
    string_data: dict[str, str] | None = None
    type: str | None = None
    immutable: bool | None = None


class DeploymentSpec(KubeWire):
    replicas: Int32 | None = None
    selector: LabelSelector
    template: PodTemplateSpec
    strategy: dict[str, object] | None = None
    min_ready_seconds: Int32 | None = None
    revision_history_limit: Int32 | None = None
    paused: bool | None = None
    progress_deadline_seconds: Int32 | None = None


class Deployment(_KubeResource):
    spec: DeploymentSpec


# --- networking.k8s.io/v1 --------------------------------------------------------------


class NetworkPolicyPort(KubeWire):
    protocol: Protocol | None = None  # TCP when omitted (api.defaults does not fill it)
    port: IntOrString | None = None  # None: every port of the protocol
    end_port: Int32 | None = None


class IPBlock(KubeWire):
    cidr: str
    except_: list[str] | None = Field(default=None, alias="except")


class NetworkPolicyPeer(KubeWire):
    pod_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    ip_block: IPBlock | None = None


class NetworkPolicyIngressRule(KubeWire):
    from_: list[NetworkPolicyPeer] | None = Field(default=None, alias="from")
    ports: list[NetworkPolicyPort] | None = None


class NetworkPolicyEgressRule(KubeWire):
    to: list[NetworkPolicyPeer] | None = None
    ports: list[NetworkPolicyPort] | None = None


PolicyType = Literal["Ingress", "Egress"]


class NetworkPolicySpec(KubeWire):
    pod_selector: LabelSelector = Field(default_factory=LabelSelector)
    policy_types: list[PolicyType] | None = None
    ingress: list[NetworkPolicyIngressRule] | None = None
    egress: list[NetworkPolicyEgressRule] | None = None

    @property
    def effective_policy_types(self) -> tuple[PolicyType, ...]:
        """Kubernetes' default when ``policyTypes`` is unset: Ingress always, Egress when
        the policy has egress rules."""
        if self.policy_types is not None:
            return tuple(self.policy_types)
        return ("Ingress", "Egress") if self.egress else ("Ingress",)


class NetworkPolicy(_KubeResource):
    spec: NetworkPolicySpec = Field(default_factory=NetworkPolicySpec)


# --- core/v1 Endpoints and discovery.k8s.io/v1 EndpointSlice ---------------------------


class TargetRef(KubeWire):
    """An ObjectReference as endpoints carry it (usually a Pod)."""

    kind: str | None = None
    namespace: str | None = None
    name: str | None = None
    uid: str | None = None


class EndpointAddress(KubeWire):
    ip: str
    hostname: str | None = None
    node_name: str | None = None
    target_ref: TargetRef | None = None


class EndpointPort(KubeWire):
    name: str | None = None
    port: Int32
    protocol: Protocol | None = None
    app_protocol: str | None = None


class EndpointSubset(KubeWire):
    addresses: list[EndpointAddress] | None = None
    not_ready_addresses: list[EndpointAddress] | None = None
    ports: list[EndpointPort] | None = None


class Endpoints(_KubeResource):
    """The endpoints of the Service of the same name: Kubernetes mirrors them to
    EndpointSlices when that Service has no selector, which is when meshgate reads them."""

    subsets: list[EndpointSubset] | None = None


class EndpointConditions(KubeWire):
    ready: bool | None = None  # unset means ready, as Kubernetes says
    serving: bool | None = None
    terminating: bool | None = None


class SliceEndpoint(KubeWire):
    addresses: list[str]
    conditions: EndpointConditions | None = None
    hostname: str | None = None
    target_ref: TargetRef | None = None
    node_name: str | None = None
    zone: str | None = None


class EndpointSlicePort(KubeWire):
    name: str | None = None
    port: Int32 | None = None
    protocol: Protocol | None = None
    app_protocol: str | None = None


class EndpointSlice(_KubeResource):
    """Endpoints of the Service named by its ``kubernetes.io/service-name`` label."""

    address_type: Literal["IPv4", "IPv6", "FQDN"]
    endpoints: list[SliceEndpoint] = Field(default_factory=list)
    ports: list[EndpointSlicePort] | None = None


for _group, _version, _kind, _plural, _shorts, _namespaced, _model in (
    ("", "v1", "Namespace", "namespaces", ("ns",), False, Namespace),
    ("", "v1", "ServiceAccount", "serviceaccounts", ("sa",), True, ServiceAccount),
    ("", "v1", "Service", "services", ("svc",), True, Service),
    ("", "v1", "Pod", "pods", ("po",), True, Pod),
    ("", "v1", "ConfigMap", "configmaps", ("cm",), True, ConfigMap),
    ("", "v1", "Secret", "secrets", (), True, Secret),
    ("", "v1", "Endpoints", "endpoints", ("ep",), True, Endpoints),
    ("", "v1", "Node", "nodes", ("no",), False, Node),
    (
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
        "endpointslices",
        (),
        True,
        EndpointSlice,
    ),
    ("apps", "v1", "Deployment", "deployments", ("deploy",), True, Deployment),
    (
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
        ("netpol",),
        True,
        NetworkPolicy,
    ),
):
    register(
        KindInfo(
            group=_group,
            kind=_kind,
            versions=(_version,),
            plural=_plural,
            singular=_kind.lower(),
            short_names=_shorts,
            namespaced=_namespaced,
            model=_model,
        )
    )
