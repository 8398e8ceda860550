"""Running every analyzer over one set of inputs, and choosing what to show.

Rules of this module:
- ``ANALYZERS`` is the table of analyzers (name as Istio names it, what it checks, the
  function); each gets the same read-only context and reports into it.
- Messages come back sorted (origin, file, line, code, text) and de-duplicated: two
  analyzers making the same finding (a Gateway selector that matches no pod is found by
  both the port and the credential analyzer, as in Istio) print it once.
- ``Result.shown`` keeps messages at or above the output threshold, about resources in the
  namespaces asked for (cluster-scoped resources and file-level notes always count);
  ``Result.failed`` says whether any shown message reaches the failure threshold.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from meshgate.analysis import (
    asmegress,
    authz,
    deprecation,
    destinationrules,
    egress,
    gateways,
    schema,
    secretaccess,
    serviceentries,
    sidecars,
    virtualservices,
    vsmatches,
)
from meshgate.analysis import messages as msg
from meshgate.analysis.context import AnalysisContext
from meshgate.analysis.inputs import Inputs
from meshgate.analysis.messages import Message, level_rank
from meshgate.api.problems import Severity


@dataclass(frozen=True)
class Analyzer:
    name: str
    description: str
    run: Callable[[AnalysisContext], None]


def _virtual_service_schema(ctx: AnalysisContext) -> None:
    schema.for_kind("VirtualService")(ctx)
    vsmatches.unreachable_rules(ctx)


ANALYZERS: tuple[Analyzer, ...] = (
    Analyzer(
        "gateway.IngressGatewayPortAnalyzer",
        "a Gateway's selector matches pods, and its ports are on their Service",
        gateways.gateway_ports,
    ),
    Analyzer(
        "gateway.SecretAnalyzer",
        "a Gateway's credentialName names an existing Secret",
        gateways.gateway_secrets,
    ),
    Analyzer(
        "gateway.ConflictingGatewayAnalyzer",
        "no two Gateways claim the same workload, port and host",
        gateways.conflicting_gateways,
    ),
    Analyzer(
        "gateway.CertificateAnalyzer",
        "no certificate is shared by Gateways on the same workload",
        gateways.duplicate_certificates,
    ),
    Analyzer(
        "virtualservice.DestinationHostAnalyzer",
        "route and mirror destinations are known services, with ports they expose",
        virtualservices.destination_hosts,
    ),
    Analyzer(
        "virtualservice.DestinationRuleAnalyzer",
        "destination subsets are defined by a DestinationRule",
        virtualservices.destination_subsets,
    ),
    Analyzer(
        "virtualservice.GatewayAnalyzer",
        "referenced gateways exist and publish the VirtualService's hosts",
        virtualservices.gateways,
    ),
    Analyzer(
        "virtualservice.JWTClaimRouteAnalyzer",
        "JWT claim routing on a gateway has a RequestAuthentication for its pods",
        virtualservices.jwt_claim_routes,
    ),
    Analyzer(
        "virtualservice.ConflictingMeshGatewayHostsAnalyzer",
        "mesh-bound VirtualServices do not define the same host",
        virtualservices.conflicting_mesh_hosts,
    ),
    Analyzer(
        "schema.ValidationAnalyzer.VirtualService",
        "VirtualServices are well-formed; no rule or match is shadowed by an earlier one",
        _virtual_service_schema,
    ),
    *(
        Analyzer(
            f"schema.ValidationAnalyzer.{kind}",
            f"{kind}s are well-formed",
            schema.for_kind(kind),
        )
        for kind in schema.ISTIO_KINDS
        if kind != "VirtualService"
    ),
    Analyzer(
        "schema.ValidationAnalyzer",
        "resources of other kinds are well-formed",
        schema.other_kinds,
    ),
    Analyzer(
        "destinationrule.PodNotSelectedAnalyzer",
        "a DestinationRule's host is a service and its subsets select pods",
        destinationrules.subsets_select_pods,
    ),
    Analyzer(
        "destinationrule.CaCertificateAnalyzer",
        "TLS origination verifies the server (caCertificates)",
        destinationrules.ca_certificates,
    ),
    Analyzer(
        "destinationrule.SidecarCredentialAnalyzer",
        "sidecars given a MUTUAL credentialName may read Secrets (RBAC)",
        secretaccess.unreadable_credentials,
    ),
    Analyzer(
        "serviceentry.ProtocolAddressesAnalyzer",
        "ServiceEntries with TCP ports have addresses",
        serviceentries.addresses_required,
    ),
    Analyzer(
        "sidecar.SelectorAnalyzer",
        "Sidecar selectors select pods, no pod is selected twice, at most one selector-less "
        "Sidecar per namespace",
        sidecars.selectors,
    ),
    Analyzer(
        "auth.AuthorizationPoliciesAnalyzer",
        "AuthorizationPolicies apply to in-mesh workloads and name existing namespaces",
        authz.policies,
    ),
    Analyzer(
        "auth.PeerIdentityAnalyzer",
        "AuthorizationPolicies on a gateway match peer identities only where mTLS gives them",
        authz.peer_identity,
    ),
    Analyzer(
        "auth.SidecarPeerIdentityAnalyzer",
        "AuthorizationPolicies on a sidecar match peer identities only where mTLS is on",
        authz.peer_identity_sidecars,
    ),
    Analyzer(
        "asm.EgressTrafficPolicyAnalyzer",
        "ASMEgressTrafficPolicies compile: gateway found, ports consistent, no conflict",
        asmegress.policies_compile,
    ),
    Analyzer(
        "egress.EnforcementAnalyzer",
        "an egress gateway that VirtualServices route to is the only exit (egressEnforcement)",
        egress.bypassable_gateway,
    ),
    Analyzer(
        "deprecation.FieldAnalyzer",
        "no deprecated fields",
        deprecation.deprecated_fields,
    ),
    Analyzer(
        "annotations.K8sAnalyzer",
        "no deprecated Istio annotations",
        deprecation.deprecated_annotations,
    ),
)


@dataclass(frozen=True)
class Result:
    messages: tuple[Message, ...]

    def shown(
        self, namespaces: set[str] | None = None, threshold: Severity = Severity.INFO
    ) -> list[Message]:
        """Messages at or above ``threshold``; only in ``namespaces`` unless None (all)."""
        floor = level_rank(threshold)
        return [
            m
            for m in self.messages
            if level_rank(m.level) >= floor
            and (namespaces is None or not m.namespace or m.namespace in namespaces)
        ]

    @staticmethod
    def failed(shown: list[Message], threshold: Severity) -> bool:
        return any(level_rank(m.level) >= level_rank(threshold) for m in shown)


def analyze(inputs: Inputs, analyzers: tuple[Analyzer, ...] = ANALYZERS) -> Result:
    """Run ``analyzers`` over ``inputs``; the inputs' own notes come first in the result."""
    skipped = {m.origin.split(" ", 1)[0] for m in inputs.notes if m.type == msg.SKIPPED_KIND}
    ctx = AnalysisContext(inputs.resources, list(inputs.nodes.values()), skipped)
    for analyzer in analyzers:
        analyzer.run(ctx)
    found = sorted(set(ctx.messages), key=Message.sort_key)
    notes = list(dict.fromkeys(inputs.notes))
    return Result(tuple(notes + [m for m in found if m not in notes]))
