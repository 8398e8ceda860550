"""The analysis message catalog: Istio's codes, names, levels and wording, plus meshgate's own.

Rules of this module:
- Where a check is the same as one of ``istioctl analyze``'s, it uses Istio's code, name,
  level, message template and description (istio/istio
  ``pkg/config/analysis/msg/messages.yaml``, compared at commit
  86c9f01fd735fb01d8192f5bcaf0d424afb7f14c), so a user can look the code up in Istio's
  documentation. Codes meshgate adds are ``MG2xxx``.
- Templates are ``str.format`` strings; ``quote`` renders a Go ``%q`` argument.
- A ``Message`` prints exactly as istioctl's log format:
  ``Error [IST0101] (VirtualService default/foo vs.yaml:12) Referenced host not found: "bar"``;
  the ``file:line`` part appears only when the resource came from a file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from meshgate.api.problems import Severity

DOCS_URL = "https://istio.io/latest/docs/reference/config/analysis/"


@dataclass(frozen=True)
class MessageType:
    code: str
    name: str
    level: Severity
    template: str
    description: str

    @property
    def url(self) -> str:
        return "" if self.code.startswith("MG") else f"{DOCS_URL}{self.code.lower()}"


def quote(value: object) -> str:
    """Go's ``%q`` for the strings we print: double quotes, escapes as JSON writes them."""
    return json.dumps(str(value), ensure_ascii=False)


E, W, INFO = Severity.ERROR, Severity.WARNING, Severity.INFO

DEPRECATED = MessageType(
    "IST0002",
    "Deprecated",
    W,
    "Deprecated: {}",
    "A feature that the configuration is depending on is now deprecated.",
)
REFERENCED_RESOURCE_NOT_FOUND = MessageType(
    "IST0101",
    "ReferencedResourceNotFound",
    E,
    "Referenced {} not found: {}",
    "A resource being referenced does not exist.",
)
SCHEMA_VALIDATION_ERROR = MessageType(
    "IST0106",
    "SchemaValidationError",
    E,
    "Schema validation error: {}",
    "The resource has a schema validation error.",
)
CONFLICTING_MESH_GATEWAY_VS_HOSTS = MessageType(
    "IST0109",
    "ConflictingMeshGatewayVirtualServiceHosts",
    E,
    "The VirtualServices {} associated with mesh gateway define the same host {} which can "
    "lead to undefined behavior. This can be fixed by merging the conflicting VirtualServices "
    "into a single resource.",
    "Conflicting hosts on VirtualServices associated with mesh gateway",
)
CONFLICTING_SIDECAR_SELECTORS = MessageType(
    "IST0110",
    "ConflictingSidecarWorkloadSelectors",
    E,
    "The Sidecars {} in namespace {} select the same workload pod {}, which can lead to "
    "undefined behavior.",
    "A Sidecar resource selects the same workloads as another Sidecar resource",
)
MULTIPLE_SIDECARS_WITHOUT_SELECTORS = MessageType(
    "IST0111",
    "MultipleSidecarsWithoutWorkloadSelectors",
    E,
    "The Sidecars {} in namespace {} have no workload selector, which can lead to undefined "
    "behavior.",
    "More than one sidecar resource in a namespace has no workload selector",
)
VS_DESTINATION_PORT_SELECTOR_REQUIRED = MessageType(
    "IST0112",
    "VirtualServiceDestinationPortSelectorRequired",
    E,
    "This VirtualService routes to a service {} that exposes multiple ports {}. Specifying a "
    "port in the destination is required to disambiguate.",
    "A VirtualService routes to a service with more than one port exposed, but does not "
    "specify which to use.",
)
NO_MATCHING_WORKLOADS_FOUND = MessageType(
    "IST0127",
    "NoMatchingWorkloadsFound",
    W,
    "No matching workloads for this resource with the following labels: {}",
    "There aren't workloads matching the resource labels",
)
VS_UNREACHABLE_RULE = MessageType(
    "IST0130",
    "VirtualServiceUnreachableRule",
    W,
    "VirtualService rule {} not used ({}).",
    "A VirtualService rule will never be used because a previous rule uses the same match.",
)
VS_INEFFECTIVE_MATCH = MessageType(
    "IST0131",
    "VirtualServiceIneffectiveMatch",
    INFO,
    "VirtualService rule {} match {} is not used (duplicate/overlapping match in rule {}).",
    "A VirtualService rule match duplicates a match in a previous rule.",
)
VS_HOST_NOT_FOUND_IN_GATEWAY = MessageType(
    "IST0132",
    "VirtualServiceHostNotFoundInGateway",
    W,
    "one or more host {} defined in VirtualService {} not found in Gateway {}.",
    "Host defined in VirtualService not found in Gateway.",
)
SCHEMA_WARNING = MessageType(
    "IST0133",
    "SchemaWarning",
    W,
    "Schema validation warning: {}",
    "The resource has a schema validation warning.",
)
SERVICE_ENTRY_ADDRESSES_REQUIRED = MessageType(
    "IST0134",
    "ServiceEntryAddressesRequired",
    W,
    "ServiceEntry addresses are required for this protocol.",
    "Virtual IP addresses are required for ports serving TCP (or unset) protocol when "
    "PILOT_ENABLE_IP_AUTOALLOCATE is not set on a proxy",
)
DEPRECATED_ANNOTATION = MessageType(
    "IST0135",
    "DeprecatedAnnotation",
    INFO,
    "Annotation {} has been deprecated{} and may not work in future Istio versions.",
    "A resource is using a deprecated Istio annotation.",
)
CONFLICTING_GATEWAYS = MessageType(
    "IST0145",
    "ConflictingGateways",
    E,
    "Conflict with gateways {} (workload selector {}, port {}, hosts {}).",
    "Gateway should not have the same selector, port and matched hosts of server",
)
INVALID_GATEWAY_CREDENTIAL = MessageType(
    "IST0161",
    "InvalidGatewayCredential",
    E,
    "The credential referenced by the Gateway {} in namespace {} is invalid, which can cause "
    "the traffic not to work as expected.",
    "The credential provided for the Gateway resource is invalid",
)
GATEWAY_PORT_NOT_DEFINED_ON_SERVICE = MessageType(
    "IST0162",
    "GatewayPortNotDefinedOnService",
    W,
    "The gateway is listening on a target port (port {}) that is not defined in the Service "
    "associated with its workload instances (Pod selector {}). If you need to access the "
    "gateway port through the gateway Service, it will not be available.",
    "Gateway port not exposed by service",
)
DR_SUBSET_NOT_SELECT_PODS = MessageType(
    "IST0173",
    "DestinationRuleSubsetNotSelectPods",
    E,
    "The Subset {} defined in the DestinationRule does not select any pods. Which may lead to "
    "503 UH (NoHealthyUpstream).",
    "Subsets defined in destination does not select any pods.",
)
UNKNOWN_DR_HOST = MessageType(
    "IST0174",
    "UnknownDestinationRuleHost",
    W,
    "The host {} defined in the DestinationRule does not match any services in the mesh.",
    "Host defined in destination rule does not match any services in the mesh.",
)
GATEWAY_DUPLICATE_CERTIFICATE = MessageType(
    "IST0138",
    "GatewayDuplicateCertificate",
    W,
    "Duplicate certificate in multiple gateways {} may cause 404s if clients re-use HTTP2 "
    "connections.",
    "Duplicate certificate in multiple gateways may cause 404s if clients re-use HTTP2 "
    "connections.",
)
INGRESS_ROUTE_RULES_NOT_AFFECTED = MessageType(
    "IST0140",
    "IngressRouteRulesNotAffected",
    W,
    "Subset in virtual service {} has no effect on ingress gateway {} requests",
    "Route rules have no effect on ingress gateway requests",
)
JWT_CLAIM_ROUTING_WITHOUT_REQUEST_AUTHN = MessageType(
    "IST0149",
    "JwtClaimBasedRoutingWithoutRequestAuthN",
    E,
    "The virtual service uses the JWT claim based routing (key: {}) but found no request "
    "authentication for the gateway ({}) pod ({}). The request authentication must first be "
    "applied for the gateway pods to validate the JWT token and make the claims available for "
    "routing.",
    "Virtual service using JWT claim based routing without request authentication.",
)
REFERENCED_INTERNAL_GATEWAY = MessageType(
    "IST0165",
    "ReferencedInternalGateway",
    W,
    "Gateway reference in VirtualService {} is to an implementation-generated internal "
    "Gateway: {}.",
    "VirtualServices should not reference internal Gateways.",
)
INEFFECTIVE_POLICY = MessageType(
    "IST0167",
    "IneffectivePolicy",
    W,
    "The policy has no impact: {}.",
    "The policy applied has no impact.",
)
NO_SERVER_CERT_VERIFICATION_DESTINATION = MessageType(
    "IST0128",
    "NoServerCertificateVerificationDestinationLevel",
    W,
    "DestinationRule {} in namespace {} has TLS mode set to {} but no caCertificates are set "
    "to validate server identity for host: {}",
    "No caCertificates are set in DestinationRule, this results in no verification of "
    "presented server certificate.",
)
NO_SERVER_CERT_VERIFICATION_PORT = MessageType(
    "IST0129",
    "NoServerCertificateVerificationPortLevel",
    W,
    "DestinationRule {} in namespace {} has TLS mode set to {} but no caCertificates are set "
    "to validate server identity for host: {} at port {}",
    "No caCertificates are set in DestinationRule, this results in no verification of "
    "presented server certificate for traffic to a given port.",
)
SKIPPED_KIND = MessageType(
    "MG2001",
    "UnsupportedKindSkipped",
    INFO,
    "Skipped: {} is not a kind meshgate models; it was not analyzed.",
    "A document of a kind meshgate does not model (EnvoyFilter, say) was read and skipped.",
)
PEER_IDENTITY_ON_PLAINTEXT = MessageType(
    "MG2002",
    "PeerIdentityOnPlaintextHop",
    W,
    "{} need an mTLS peer identity, but this gateway is reached in plaintext (no server of "
    "Gateway {} has tls.mode ISTIO_MUTUAL): on this hop they never match, and their not- "
    "forms always do. Match on ipBlocks, or serve the gateway with ISTIO_MUTUAL.",
    "An AuthorizationPolicy on a gateway matches peer identities (principals, namespaces, "
    "service accounts), which only mutual TLS carries, and no server of that gateway uses "
    "ISTIO_MUTUAL.",
)
EGRESS_GATEWAY_BYPASSABLE = MessageType(
    "MG2003",
    "EgressGatewayBypassable",
    INFO,
    "This VirtualService sends traffic to the egress gateway {}, but MeshConfig "
    "egressEnforcement is OFF: workloads can go around the gateway (a pod without a "
    "sidecar, or traffic its sidecar passes through, reaches external hosts directly). "
    "Set egressEnforcement: GATEWAY_ONLY to make the gateway the only exit.",
    "A VirtualService routes to an egress gateway while nothing stops workloads from "
    "reaching external hosts without it (MeshConfig egressEnforcement OFF).",
)
PEER_IDENTITY_WITH_MTLS_DISABLED = MessageType(
    "MG2004",
    "PeerIdentityWithMtlsDisabled",
    W,
    "{} need an mTLS peer identity, but PeerAuthentication {} sets mode DISABLE for pod {}: "
    "its callers arrive in plaintext, so these never match there and their not- forms always "
    "do. Use STRICT or PERMISSIVE, or match on ipBlocks.",
    "An AuthorizationPolicy on a sidecar matches peer identities (principals, namespaces, "
    "service accounts), and PeerAuthentication turns mutual TLS off for that workload.",
)
SIDECAR_CREDENTIAL_NOT_READABLE = MessageType(
    "MG2005",
    "SidecarCredentialNotReadable",
    E,
    "credentialName {} is not delivered to the sidecars of {}: service account {} may not list "
    "Secrets in namespace {} (Kubernetes RBAC, checked as istiod checks it), so they get no "
    "client certificate and their mutual TLS to {} fails. Bind the account to a Role "
    "allowing get, list and watch on secrets.",
    "A DestinationRule with a workloadSelector gives sidecars a MUTUAL credentialName, and "
    "their service account may not read Secrets: the control plane withholds the key.",
)
ASM_EGRESS_POLICY_NOT_APPLIED = MessageType(
    "MG2010",
    "EgressTrafficPolicyNotApplied",
    E,
    "ASMEgressTrafficPolicy is not applied ({}): {}",
    "An ASMEgressTrafficPolicy cannot be compiled to the mesh: its egress gateway is missing, "
    "its ports clash, or a resource it would generate conflicts with one written by hand "
    "(same kind, namespace and name, or one Istio would merge with it). Nothing is "
    "overwritten or merged; rename or remove the other resource, or change the policy.",
)

CATALOG: tuple[MessageType, ...] = (
    DEPRECATED,
    REFERENCED_RESOURCE_NOT_FOUND,
    SCHEMA_VALIDATION_ERROR,
    CONFLICTING_MESH_GATEWAY_VS_HOSTS,
    CONFLICTING_SIDECAR_SELECTORS,
    MULTIPLE_SIDECARS_WITHOUT_SELECTORS,
    VS_DESTINATION_PORT_SELECTOR_REQUIRED,
    NO_MATCHING_WORKLOADS_FOUND,
    VS_UNREACHABLE_RULE,
    VS_INEFFECTIVE_MATCH,
    VS_HOST_NOT_FOUND_IN_GATEWAY,
    SCHEMA_WARNING,
    SERVICE_ENTRY_ADDRESSES_REQUIRED,
    DEPRECATED_ANNOTATION,
    CONFLICTING_GATEWAYS,
    INVALID_GATEWAY_CREDENTIAL,
    GATEWAY_PORT_NOT_DEFINED_ON_SERVICE,
    DR_SUBSET_NOT_SELECT_PODS,
    UNKNOWN_DR_HOST,
    GATEWAY_DUPLICATE_CERTIFICATE,
    INGRESS_ROUTE_RULES_NOT_AFFECTED,
    JWT_CLAIM_ROUTING_WITHOUT_REQUEST_AUTHN,
    REFERENCED_INTERNAL_GATEWAY,
    INEFFECTIVE_POLICY,
    NO_SERVER_CERT_VERIFICATION_DESTINATION,
    NO_SERVER_CERT_VERIFICATION_PORT,
    SKIPPED_KIND,
    PEER_IDENTITY_ON_PLAINTEXT,
    EGRESS_GATEWAY_BYPASSABLE,
    PEER_IDENTITY_WITH_MTLS_DISABLED,
    SIDECAR_CREDENTIAL_NOT_READABLE,
    ASM_EGRESS_POLICY_NOT_APPLIED,
)

_LEVEL_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.ERROR: 2}


def level_rank(level: Severity) -> int:
    return _LEVEL_RANK[level]


def parse_level(text: str) -> Severity:
    """``error``/``Warning``/``INFO`` -> Severity; ValueError for anything else."""
    for level in Severity:
        if level.value.lower() == text.strip().lower():
            return level
    raise ValueError(f"invalid level {text!r}: use Error, Warning or Info")


@dataclass(frozen=True)
class Message:
    """One finding about one resource (``origin`` is ``Kind ns/name``, or ``Kind name``)."""

    type: MessageType
    origin: str
    namespace: str
    text: str
    file: str = ""
    line: int | None = None

    @property
    def level(self) -> Severity:
        return self.type.level

    @property
    def reference(self) -> str:
        if not self.file:
            return self.origin
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{self.origin} {where}" if self.origin else where

    def __str__(self) -> str:
        return f"{self.level.value} [{self.type.code}] ({self.reference}) {self.text}"

    def sort_key(self) -> tuple[str, str, int, str, str]:
        return (self.origin, self.file, self.line or 0, self.type.code, self.text)

    def to_dict(self) -> dict[str, Any]:
        """The shape of istioctl's ``-o json`` entries, plus name, file and line."""
        out: dict[str, Any] = {
            "code": self.type.code,
            "name": self.type.name,
            "level": self.level.value,
            "message": self.text,
            "origin": self.origin,
            "reference": self.reference,
        }
        if self.type.url:
            out["documentationUrl"] = self.type.url
        if self.file:
            out["file"] = self.file
        if self.line is not None:
            out["line"] = self.line
        return out


def render(mtype: MessageType, *args: object) -> str:
    return mtype.template.format(*args)
