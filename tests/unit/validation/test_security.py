"""AuthorizationPolicy accept/reject table, modelled on Istio's
TestValidateAuthorizationPolicy and pkg/config/security's tests."""

# Case tables keep each YAML case on one line, like Istio's test tables.
# ruff: noqa: E501

from __future__ import annotations

import pytest
from tests.unit.validation.cases import Case, check, params
from tests.unit.validation.verdict import error_codes

CASES = [
    Case("empty policy (ALLOW nothing)", None, "{}"),
    Case("allow all with rules: [{}]", None, "rules: [{}]"),
    Case("selector", None, "selector: {matchLabels: {app: httpbin}}\nrules: [{}]"),
    Case("selector with wildcard", "MG1049", "selector: {matchLabels: {app: '*'}}"),
    Case(
        "selector and targetRef",
        "MG1019",
        "selector: {matchLabels: {app: a}}\ntargetRef: {kind: Service, name: a}",
    ),
    Case(
        "targetRef Gateway",
        None,
        "targetRef: {group: gateway.networking.k8s.io, kind: Gateway, name: gw}",
    ),
    Case(
        "targetRef to a Deployment", "MG1078", "targetRef: {group: apps, kind: Deployment, name: d}"
    ),
    Case(
        "targetRef with namespace",
        "MG1078",
        "targetRef: {kind: Service, name: a, namespace: other}",
    ),
    Case(
        "targetRefs ServiceEntry",
        None,
        "targetRefs: [{group: networking.istio.io, kind: ServiceEntry, name: se}]",
    ),
    Case("DENY without rules", "MG1075", "action: DENY"),
    Case("DENY with rules: [{}]", None, "action: DENY\nrules: [{}]"),
    Case("CUSTOM without rules", "MG1075", "action: CUSTOM\nprovider: {name: ext}"),
    Case("CUSTOM without provider", "MG1036", "action: CUSTOM\nrules: [{}]"),
    Case("CUSTOM with provider", None, "action: CUSTOM\nprovider: {name: ext}\nrules: [{}]"),
    Case("provider with ALLOW", "MG1036", "provider: {name: ext}\nrules: [{}]"),
    Case("AUDIT with rules", None, "action: AUDIT\nrules: [{to: [{operation: {paths: [/a]}}]}]"),
    Case(
        "CUSTOM with principals",
        "MG1075",
        "action: CUSTOM\nprovider: {name: ext}\nrules: [{from: [{source: {principals: [a]}}]}]",
    ),
    Case(
        "CUSTOM with source.namespace condition",
        "MG1075",
        "action: CUSTOM\nprovider: {name: ext}\nrules: [{when: [{key: source.namespace, values: [a]}]}]",
    ),
    Case(
        "CUSTOM with request.auth condition",
        "MG1075",
        "action: CUSTOM\nprovider: {name: ext}\n"
        "rules: [{when: [{key: 'request.auth.claims[iss]', values: [a]}]}]",
    ),
    Case(
        "CUSTOM with ipBlocks",
        None,
        "action: CUSTOM\nprovider: {name: ext}\nrules: [{from: [{source: {ipBlocks: [1.2.3.4]}}]}]",
    ),
    Case("from: [] written empty", "MG1037", "rules: [{from: []}]"),
    Case("to: [] written empty", "MG1037", "rules: [{to: []}]"),
    Case("from without source", "MG1037", "rules: [{from: [{}]}]"),
    Case("empty source", "MG1037", "rules: [{from: [{source: {}}]}]"),
    Case("empty operation", "MG1037", "rules: [{to: [{operation: {}}]}]"),
    Case(
        "principals",
        None,
        "rules: [{from: [{source: {principals: [cluster.local/ns/default/sa/sleep]}}]}]",
    ),
    Case("notPrincipals", None, "rules: [{from: [{source: {notPrincipals: ['*']}}]}]"),
    Case("empty principal value", "MG1076", "rules: [{from: [{source: {principals: ['']}}]}]"),
    Case(
        "serviceAccounts with principals",
        "MG1025",
        "rules: [{from: [{source: {serviceAccounts: [a], principals: [b]}}]}]",
    ),
    Case("serviceAccounts ns/sa", None, "rules: [{from: [{source: {serviceAccounts: [ns/sa]}}]}]"),
    Case(
        "serviceAccounts wildcard",
        "MG1076",
        "rules: [{from: [{source: {serviceAccounts: ['ns/*']}}]}]",
    ),
    Case(
        "serviceAccounts a/b/c", "MG1076", "rules: [{from: [{source: {serviceAccounts: [a/b/c]}}]}]"
    ),
    Case("ipBlocks", None, "rules: [{from: [{source: {ipBlocks: [10.0.0.0/8, 1.2.3.4]}}]}]"),
    Case("bad ipBlocks", "MG1017", "rules: [{from: [{source: {ipBlocks: [10.0.0.0/40]}}]}]"),
    Case(
        "bad remoteIpBlocks", "MG1017", "rules: [{from: [{source: {remoteIpBlocks: [a.b.c.d]}}]}]"
    ),
    Case("ports", None, "rules: [{to: [{operation: {ports: ['8080'], methods: [GET]}}]}]"),
    Case("port not a number", "MG1076", "rules: [{to: [{operation: {ports: [http]}}]}]"),
    Case("port too large", "MG1076", "rules: [{to: [{operation: {notPorts: ['70000']}}]}]"),
    Case(
        "paths with templates",
        None,
        "rules: [{to: [{operation: {paths: ['/foo/{*}/bar', '/a/{**}']}}]}]",
    ),
    Case(
        "path {**} not last", "MG1076", "rules: [{to: [{operation: {paths: ['/a/{**}/b/{*}']}}]}]"
    ),
    Case(
        "path with brace outside template",
        "MG1076",
        "rules: [{to: [{operation: {paths: ['/a/{foo}']}}]}]",
    ),
    Case(
        "path template with invalid literal",
        "MG1076",
        "rules: [{to: [{operation: {paths: ['/a b/{*}']}}]}]",
    ),
    Case("empty host value", "MG1076", "rules: [{to: [{operation: {hosts: ['']}}]}]"),
    Case(
        "condition request.headers[x]",
        None,
        "rules: [{when: [{key: 'request.headers[x-token]', values: [a]}]}]",
    ),
    Case(
        "condition header key without name",
        "MG1077",
        "rules: [{when: [{key: request.headers, values: [a]}]}]",
    ),
    Case(
        "condition source.ip CIDR",
        None,
        "rules: [{when: [{key: source.ip, values: [10.0.0.0/8]}]}]",
    ),
    Case("condition source.ip bad", "MG1077", "rules: [{when: [{key: source.ip, values: [foo]}]}]"),
    Case(
        "condition destination.port bad",
        "MG1077",
        "rules: [{when: [{key: destination.port, notValues: ['-1']}]}]",
    ),
    Case("condition unknown key", "MG1077", "rules: [{when: [{key: foo.bar, values: [a]}]}]"),
    Case(
        "condition destination.namespace replaced",
        "MG1077",
        "rules: [{when: [{key: destination.namespace, values: [a]}]}]",
    ),
    Case("condition without values", "MG1037", "rules: [{when: [{key: source.principal}]}]"),
    Case(
        "condition with empty value",
        "MG1077",
        "rules: [{when: [{key: source.principal, values: ['']}]}]",
    ),
    Case(
        "condition connection.sni",
        None,
        "rules: [{when: [{key: connection.sni, values: [a.com]}]}]",
    ),
    Case(
        "DENY with only HTTP attributes is warned",
        None,
        "action: DENY\nrules: [{to: [{operation: {methods: [GET]}}]}]",
    ),
]


@pytest.mark.parametrize("case", params(CASES))
def test_authorization_policy(case: Case) -> None:
    check("AuthorizationPolicy", case)


@pytest.mark.parametrize(
    ("kind", "spec", "value", "valid"),
    [
        ("AuthorizationPolicy", "action: DENY\nrules: [{}]", "'true'", True),
        ("AuthorizationPolicy", "action: DENY\nrules: [{}]", "maybe", False),
        ("AuthorizationPolicy", "action: AUDIT\nrules: [{}]", "'true'", False),
        ("Sidecar", "egress: [{hosts: ['./*']}]", "'true'", False),
    ],
)
def test_dry_run_annotation(kind: str, spec: str, value: str, valid: bool) -> None:
    """Istio's checkDryRunAnnotation: AuthorizationPolicy ALLOW/DENY only, a boolean."""
    meta = f"annotations: {{istio.io/dry-run: {value}}}"
    codes = error_codes(kind, spec, extra_meta=meta)
    assert ("MG1079" not in codes) is valid


PEER_CASES = [
    Case("empty (UNSET everywhere)", None, "{}"),
    Case("namespace STRICT", None, "mtls: {mode: STRICT}"),
    Case("unknown mode", "MG0008", "mtls: {mode: MUTUAL}"),
    Case(
        "workload port level",
        None,
        "selector: {matchLabels: {app: a}}\nmtls: {mode: STRICT}\nportLevelMtls: {8080: {mode: DISABLE}}",
    ),
    Case(
        "port level without selector",
        "MG1087",
        "mtls: {mode: STRICT}\nportLevelMtls: {8080: {mode: DISABLE}}",
    ),
    Case(
        "port level with an empty selector",
        "MG1087",
        "selector: {}\nportLevelMtls: {8080: {mode: DISABLE}}",
    ),
    Case(
        "port 0",
        "MG1003",
        "selector: {matchLabels: {app: a}}\nportLevelMtls: {0: {mode: DISABLE}}",
    ),
    Case(
        "JSON-style port key",
        None,
        "selector: {matchLabels: {app: a}}\nportLevelMtls: {'8080': {}}",
    ),
    Case("selector with wildcard", "MG1049", "selector: {matchLabels: {app: '*'}}"),
]


@pytest.mark.parametrize("case", params(PEER_CASES))
def test_peer_authentication(case: Case) -> None:
    """Istio's ValidatePeerAuthentication."""
    check("PeerAuthentication", case)


REQUEST_AUTHN_CASES = [
    Case("empty", None, "{}"),
    Case(
        "Istio's ingress task",
        None,
        "selector: {matchLabels: {istio: ingressgateway}}\njwtRules: [{issuer: testing@secure.istio.io, jwksUri: 'https://raw.githubusercontent.com/istio/istio/release-1.24/security/tools/jwt/samples/jwks.json'}]",
    ),
    Case("jwksUri only", None, "jwtRules: [{jwksUri: 'http://keycloak.example/certs'}]"),
    Case("neither issuer nor jwksUri", "MG1093", "jwtRules: [{audiences: [a]}]"),
    Case("jwksUri not http(s)", "MG1093", "jwtRules: [{issuer: i, jwksUri: 'ftp://x/jwks'}]"),
    Case("empty audience", "MG1093", "jwtRules: [{issuer: i, audiences: ['']}]"),
    Case("empty header name", "MG1093", "jwtRules: [{issuer: i, fromHeaders: [{name: ''}]}]"),
    Case("empty query parameter", "MG1093", "jwtRules: [{issuer: i, fromParams: ['']}]"),
    Case("empty cookie", "MG1093", "jwtRules: [{issuer: i, fromCookies: ['']}]"),
    Case(
        "claim to an invalid header",
        "MG1093",
        "jwtRules: [{issuer: i, outputClaimToHeaders: [{header: 'x y', claim: sub}]}]",
    ),
    Case(
        "claim to a header",
        None,
        "jwtRules: [{issuer: i, outputClaimToHeaders: [{header: x-jwt-sub, claim: sub}], timeout: 5s, presence: REQUIRED}]",
    ),
    Case("timeout below 1ms", "MG1093", "jwtRules: [{issuer: i, timeout: 0s}]"),
    Case("unknown presence", "MG0008", "jwtRules: [{issuer: i, presence: SOMETIMES}]"),
    Case("unknown field", "MG0005", "jwtRules: [{issuer: i, jwksURL: x}]"),
    Case(
        "selector and targetRef",
        "MG1019",
        "selector: {matchLabels: {app: a}}\ntargetRef: {kind: Service, name: a}",
    ),
    Case("selector with wildcard", "MG1049", "selector: {matchLabels: {app: '*'}}"),
]


@pytest.mark.parametrize("case", params(REQUEST_AUTHN_CASES))
def test_request_authentication(case: Case) -> None:
    """Istio's ValidateRequestAuthentication (and the CRD's schema)."""
    check("RequestAuthentication", case)


def test_request_authentication_warns_that_jwts_are_not_validated() -> None:
    from tests.unit.validation.verdict import problems

    found = problems("RequestAuthentication", "jwtRules: [{issuer: i}]")
    assert [(p.code, p.severity.value, p.message) for p in found] == [
        (
            "MG1093",
            "Warning",
            "stored for analysis only: meshgate's proxies do not validate JWTs, so requests "
            "with a missing or invalid token are not rejected and request.auth.* claims are "
            "never set",
        )
    ]
