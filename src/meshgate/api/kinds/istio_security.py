"""Istio ``security.istio.io`` kinds: AuthorizationPolicy, PeerAuthentication and
RequestAuthentication.

Rules of this module:
- One schema for v1 and v1beta1; v1 is the version we emit. Every field of istio/api
  ``security/v1beta1/authorization_policy.proto`` (and ``type/v1beta1/selector.proto``) is
  modelled; unknown fields are errors.
- ``Rule.from`` is a Python keyword: the attribute is ``from_``, the wire name ``from``.
- PeerAuthentication's ``portLevelMtls`` is a map keyed by port number; YAML gives int
  keys, JSON gives digit strings: both are accepted as the number.
- RequestAuthentication models every field of ``security/v1/request_authentication.proto``
  (``jwt.proto``'s JWTRule) so Istio's manifests decode; meshgate stores it for analysis
  (``virtualservice.JWTClaimRouteAnalyzer``) and does not validate JWTs with it (its
  validation rule warns so at apply).
- ``action`` stays ``None`` when omitted (ALLOW is the effective value, see
  ``effective_action``) so the stored form is what the user wrote.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Field

from meshgate.api.kinds.types import Duration, IstioWire
from meshgate.api.meta import Resource
from meshgate.api.registry import KindInfo, register

GROUP = "security.istio.io"
VERSIONS = ("v1", "v1beta1")

Action = Literal["ALLOW", "DENY", "AUDIT", "CUSTOM"]


class WorkloadSelector(IstioWire):
    """istio.type.v1beta1.WorkloadSelector (note: ``matchLabels``, not ``labels``)."""

    match_labels: dict[str, str] | None = None


class PolicyTargetReference(IstioWire):
    group: str | None = None
    kind: str
    name: str
    namespace: str | None = None


class Source(IstioWire):
    principals: list[str] | None = None
    not_principals: list[str] | None = None
    request_principals: list[str] | None = None
    not_request_principals: list[str] | None = None
    namespaces: list[str] | None = None
    not_namespaces: list[str] | None = None
    service_accounts: list[str] | None = None
    not_service_accounts: list[str] | None = None
    ip_blocks: list[str] | None = None
    not_ip_blocks: list[str] | None = None
    remote_ip_blocks: list[str] | None = None
    not_remote_ip_blocks: list[str] | None = None


class Operation(IstioWire):
    hosts: list[str] | None = None
    not_hosts: list[str] | None = None
    ports: list[str] | None = None
    not_ports: list[str] | None = None
    methods: list[str] | None = None
    not_methods: list[str] | None = None
    paths: list[str] | None = None
    not_paths: list[str] | None = None


class Condition(IstioWire):
    key: str
    values: list[str] | None = None
    not_values: list[str] | None = None


class RuleFrom(IstioWire):
    """Rule.From."""

    source: Source | None = None


class RuleTo(IstioWire):
    """Rule.To."""

    operation: Operation | None = None


class Rule(IstioWire):
    from_: list[RuleFrom] | None = Field(default=None, alias="from")
    to: list[RuleTo] | None = None
    when: list[Condition] | None = None


class ExtensionProvider(IstioWire):
    name: str


class AuthorizationPolicySpec(IstioWire):
    selector: WorkloadSelector | None = None
    target_ref: PolicyTargetReference | None = None
    target_refs: list[PolicyTargetReference] | None = None
    rules: list[Rule] | None = None
    action: Action | None = None
    provider: ExtensionProvider | None = None

    @property
    def effective_action(self) -> Action:
        return self.action or "ALLOW"


class AuthorizationPolicy(Resource):
    model_config = ConfigDict(strict=True)
    spec: AuthorizationPolicySpec = Field(default_factory=AuthorizationPolicySpec)


register(
    KindInfo(
        group=GROUP,
        kind="AuthorizationPolicy",
        versions=VERSIONS,
        plural="authorizationpolicies",
        singular="authorizationpolicy",
        short_names=("ap",),
        namespaced=True,
        model=AuthorizationPolicy,
    )
)


MtlsMode = Literal["UNSET", "DISABLE", "PERMISSIVE", "STRICT"]


def _port_key(value: Any) -> Any:
    """A JSON map key is a string: ``"8080"`` means port 8080 (as protobuf's JSON does)."""
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value


PortKey = Annotated[int, BeforeValidator(_port_key)]


class PeerAuthenticationMutualTLS(IstioWire):
    """PeerAuthentication.MutualTLS; ``mode`` omitted is ``UNSET`` (inherit)."""

    mode: MtlsMode | None = None

    @property
    def effective_mode(self) -> MtlsMode:
        return self.mode or "UNSET"


class PeerAuthenticationSpec(IstioWire):
    selector: WorkloadSelector | None = None
    mtls: PeerAuthenticationMutualTLS | None = None
    port_level_mtls: dict[PortKey, PeerAuthenticationMutualTLS] | None = None


class PeerAuthentication(Resource):
    model_config = ConfigDict(strict=True)
    spec: PeerAuthenticationSpec = Field(default_factory=PeerAuthenticationSpec)


register(
    KindInfo(
        group=GROUP,
        kind="PeerAuthentication",
        versions=VERSIONS,
        plural="peerauthentications",
        singular="peerauthentication",
        short_names=("pa",),
        namespaced=True,
        model=PeerAuthentication,
    )
)


class JWTHeader(IstioWire):
    """A header a JWT is read from (``prefix`` is stripped from its value)."""

    name: str
    prefix: str | None = None


class ClaimToHeader(IstioWire):
    header: str
    claim: str


JwtPresence = Literal["OPTIONAL", "REQUIRED"]


class JWTRule(IstioWire):
    issuer: str | None = None
    audiences: list[str] | None = None
    jwks_uri: str | None = None
    jwks: str | None = None
    from_headers: list[JWTHeader] | None = None
    from_params: list[str] | None = None
    output_payload_to_header: str | None = None
    from_cookies: list[str] | None = None
    forward_original_token: bool | None = None
    output_claim_to_headers: list[ClaimToHeader] | None = None
    timeout: Duration | None = None
    space_delimited_claims: list[str] | None = None
    presence: JwtPresence | None = None


class RequestAuthenticationSpec(IstioWire):
    selector: WorkloadSelector | None = None
    target_ref: PolicyTargetReference | None = None
    target_refs: list[PolicyTargetReference] | None = None
    jwt_rules: list[JWTRule] | None = None


class RequestAuthentication(Resource):
    model_config = ConfigDict(strict=True)
    spec: RequestAuthenticationSpec = Field(default_factory=RequestAuthenticationSpec)


register(
    KindInfo(
        group=GROUP,
        kind="RequestAuthentication",
        versions=VERSIONS,
        plural="requestauthentications",
        singular="requestauthentication",
        short_names=("ra",),
        namespaced=True,
        model=RequestAuthentication,
    )
)
