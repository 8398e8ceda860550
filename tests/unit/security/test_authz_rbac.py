"""Each AuthorizationPolicy field's Envoy RBAC form (security.rbac), as Istio writes it."""

from __future__ import annotations

from typing import Any

import pytest
from tests.golden.seedworld import decode
from tests.unit.security.rbackit import as_dict

from meshgate.security.rbac import Action, Compiler, Context, quote_meta


def compile_rule(
    rule: str, action: Action = "ALLOW", *, tcp: bool = False, trust_domain: str = "cluster.local"
) -> dict[str, Any] | None:
    """The RBAC policy of the one rule written as ``rule`` (YAML flow), in namespace ``foo``."""
    (ap,) = decode(
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
        f"metadata: {{name: p, namespace: foo}}\nspec: {{rules: [{rule}]}}\n"
    )
    built = Compiler(Context("foo", trust_domain), action, tcp=tcp).rule(ap.spec.rules[0])
    return None if built is None else as_dict(built)


def principal(rule: str, **kw: Any) -> list[dict[str, Any]]:
    """The ``and`` parts of the rule's one principal."""
    built = compile_rule(rule, **kw)
    assert built is not None
    (only,) = built["principals"]
    return only["andIds"]["ids"]  # type: ignore[no-any-return]


def permission(rule: str, **kw: Any) -> list[dict[str, Any]]:
    built = compile_rule(rule, **kw)
    assert built is not None
    (only,) = built["permissions"]
    return only["andRules"]["rules"]  # type: ignore[no-any-return]


def ors(part: dict[str, Any]) -> list[dict[str, Any]]:
    key = "orIds" if "orIds" in part else "orRules"
    inner = part[key]
    return inner["ids"] if "ids" in inner else inner["rules"]  # type: ignore[no-any-return]


def authn(matcher: dict[str, Any]) -> dict[str, Any]:
    return {"authenticated": {"principalName": matcher}}


ANY_PRINCIPAL = [{"any": True}]


def test_empty_rule_matches_everything() -> None:
    assert compile_rule("{}") == {
        "permissions": [{"andRules": {"rules": [{"any": True}]}}],
        "principals": [{"andIds": {"ids": [{"any": True}]}}],
    }


def test_principals_are_spiffe_names_with_istio_wildcards() -> None:
    rule = (
        '{from: [{source: {principals: [cluster.local/ns/a/sa/b, "*", "*/sa/web", "td/ns/x*"]}}]}'
    )
    (part,) = principal(rule)
    assert ors(part) == [
        authn({"exact": "spiffe://cluster.local/ns/a/sa/b"}),
        authn({"safeRegex": {"regex": ".+"}}),
        authn({"safeRegex": {"regex": "spiffe://.*/sa/web"}}),
        authn({"prefix": "spiffe://td/ns/x"}),
    ]


def test_cluster_local_names_the_mesh_trust_domain() -> None:
    rule = "{from: [{source: {principals: [cluster.local/ns/a/sa/b, other.td/ns/a/sa/b]}}]}"
    (part,) = principal(rule, trust_domain="example.org")
    assert ors(part) == [
        authn({"exact": "spiffe://example.org/ns/a/sa/b"}),
        authn({"exact": "spiffe://other.td/ns/a/sa/b"}),
    ]


def test_namespaces_are_principal_regexes() -> None:
    (part,) = principal('{from: [{source: {namespaces: [prod, "team.*", "*-dev"]}}]}')
    assert ors(part) == [
        authn({"safeRegex": {"regex": ".*/ns/prod/.*"}}),
        authn({"safeRegex": {"regex": r".*/ns/team\..*/.*"}}),
        authn({"safeRegex": {"regex": ".*/ns/.*-dev/.*"}}),
    ]


def test_service_accounts_default_to_the_policy_namespace() -> None:
    (part,) = principal("{from: [{source: {serviceAccounts: [web, bar/db]}}]}")
    assert ors(part) == [
        authn({"safeRegex": {"regex": "spiffe://.+/ns/foo/(.+/|)sa/web(/.+)?"}}),
        authn({"safeRegex": {"regex": "spiffe://.+/ns/bar/(.+/|)sa/db(/.+)?"}}),
    ]


def test_ip_blocks_and_remote_ip_blocks() -> None:
    (direct,) = principal('{from: [{source: {ipBlocks: [10.34.0.5, 10.1.2.3/16, "2001:db8::1"]}}]}')
    assert ors(direct) == [
        {"directRemoteIp": {"addressPrefix": "10.34.0.5", "prefixLen": 32}},
        {"directRemoteIp": {"addressPrefix": "10.1.2.3", "prefixLen": 16}},
        {"directRemoteIp": {"addressPrefix": "2001:db8::1", "prefixLen": 128}},
    ]
    (remote,) = principal("{from: [{source: {remoteIpBlocks: [192.0.2.0/24]}}]}")
    assert ors(remote) == [{"remoteIp": {"addressPrefix": "192.0.2.0", "prefixLen": 24}}]


def test_not_forms_are_not_of_an_or() -> None:
    rule = "{from: [{source: {ipBlocks: [10.0.0.0/8], notIpBlocks: [10.1.0.0/16, 10.2.0.0/16]}}]}"
    yes, no = principal(rule)
    assert ors(yes) == [{"directRemoteIp": {"addressPrefix": "10.0.0.0", "prefixLen": 8}}]
    assert ors(no["notId"]) == [
        {"directRemoteIp": {"addressPrefix": "10.1.0.0", "prefixLen": 16}},
        {"directRemoteIp": {"addressPrefix": "10.2.0.0", "prefixLen": 16}},
    ]
    (part,) = principal("{from: [{source: {notPrincipals: ['*']}}]}")
    assert ors(part["notId"]) == [authn({"safeRegex": {"regex": ".+"}})]


def test_principal_field_order_is_istios() -> None:
    rule = (
        "{from: [{source: {ipBlocks: [1.1.1.1], remoteIpBlocks: [2.2.2.2], namespaces: [n], "
        "principals: [p]}}], when: [{key: source.ip, values: [3.3.3.3]}]}"
    )
    parts = principal(rule)
    firsts = [next(iter(ors(p)[0])) for p in parts]
    assert firsts == [
        "authenticated",
        "authenticated",
        "remoteIp",
        "directRemoteIp",
        "directRemoteIp",
    ]
    assert ors(parts[0])[0] == authn({"exact": "spiffe://p"})
    assert ors(parts[-1])[0]["directRemoteIp"]["addressPrefix"] == "3.3.3.3"


def test_each_from_entry_is_a_principal_and_each_to_entry_a_permission() -> None:
    rule = (
        "{from: [{source: {ipBlocks: [1.1.1.1]}}, {source: {namespaces: [n]}}], "
        "to: [{operation: {ports: ['80']}}, {operation: {methods: [GET]}}]}"
    )
    built = compile_rule(rule)
    assert built is not None
    assert len(built["principals"]) == 2
    assert len(built["permissions"]) == 2


def test_hosts_match_authority_case_insensitively_as_written() -> None:
    parts = permission('{to: [{operation: {hosts: [Aliyun.com, "*.example.com", "api.*", "*"]}}]}')
    (hosts,) = parts
    authority = [h["header"] for h in ors(hosts)]
    assert {h["name"] for h in authority} == {":authority"}
    assert [h.get("stringMatch", h.get("presentMatch")) for h in authority] == [
        {"exact": "Aliyun.com", "ignoreCase": True},
        {"suffix": ".example.com", "ignoreCase": True},
        {"prefix": "api.", "ignoreCase": True},
        True,
    ]


def test_methods_paths_ports() -> None:
    rule = (
        '{to: [{operation: {methods: [GET], paths: [/admin, "/admin/*", "*.php", "*", '
        '"/a/{*}/b/{**}"], ports: ["8080"]}}]}'
    )
    methods, paths, ports = permission(rule)
    assert ors(methods) == [{"header": {"name": ":method", "stringMatch": {"exact": "GET"}}}]
    assert ors(paths)[:4] == [
        {"urlPath": {"path": {"exact": "/admin"}}},
        {"urlPath": {"path": {"prefix": "/admin/"}}},
        {"urlPath": {"path": {"suffix": ".php"}}},
        {"urlPath": {"path": {"safeRegex": {"regex": ".+"}}}},
    ]
    template = ors(paths)[4]["uriTemplate"]
    assert template["name"] == "uri-template"
    assert template["typedConfig"]["pathTemplate"] == "/a/*/b/**"
    assert ors(ports) == [{"destinationPort": 8080}]


def test_not_operation_fields() -> None:
    (methods,) = permission("{to: [{operation: {notMethods: [GET, HEAD]}}]}")
    assert ors(methods["notRule"]) == [
        {"header": {"name": ":method", "stringMatch": {"exact": "GET"}}},
        {"header": {"name": ":method", "stringMatch": {"exact": "HEAD"}}},
    ]


def _ip(kind: str, address: str, bits: int) -> dict[str, Any]:
    return {kind: {"addressPrefix": address, "prefixLen": bits}}


def _header(name: str, **match: Any) -> dict[str, Any]:
    if match == {"present": True}:
        return {"header": {"name": name, "presentMatch": True}}
    return {"header": {"name": name, "stringMatch": match}}


PRINCIPAL_KEYS = [
    ("{key: source.ip, values: [10.0.0.1]}", _ip("directRemoteIp", "10.0.0.1", 32)),
    ("{key: remote.ip, values: [10.0.0.0/8]}", _ip("remoteIp", "10.0.0.0", 8)),
    (
        "{key: source.namespace, values: [prod]}",
        authn({"safeRegex": {"regex": ".*/ns/prod/.*"}}),
    ),
    (
        "{key: source.principal, values: [cluster.local/ns/a/sa/b]}",
        authn({"exact": "spiffe://cluster.local/ns/a/sa/b"}),
    ),
    (
        "{key: source.serviceAccount, values: [web]}",
        authn({"safeRegex": {"regex": "spiffe://.+/ns/foo/(.+/|)sa/web(/.+)?"}}),
    ),
    ("{key: 'request.headers[x-user]', values: ['bob*']}", _header("x-user", prefix="bob")),
    ("{key: 'request.headers[x-token]', values: ['*']}", _header("x-token", present=True)),
]
PERMISSION_KEYS = [
    ("{key: destination.port, values: ['443']}", {"destinationPort": 443}),
    ("{key: destination.ip, values: [192.0.2.1]}", _ip("destinationIp", "192.0.2.1", 32)),
    (
        "{key: connection.sni, values: ['*.example.com']}",
        {"requestedServerName": {"suffix": ".example.com"}},
    ),
]


@pytest.mark.parametrize(("condition", "expected"), PRINCIPAL_KEYS)
def test_when_keys_on_the_principal(condition: str, expected: dict[str, Any]) -> None:
    (part,) = principal(f"{{when: [{condition}]}}")
    assert ors(part) == [expected]


@pytest.mark.parametrize(("condition", "expected"), PERMISSION_KEYS)
def test_when_keys_on_the_permission(condition: str, expected: dict[str, Any]) -> None:
    (part,) = permission(f"{{when: [{condition}]}}")
    assert ors(part) == [expected]


def test_when_conditions_follow_the_from_and_to_fields() -> None:
    rule = (
        "{to: [{operation: {ports: ['80']}}], from: [{source: {ipBlocks: [1.1.1.1]}}], "
        "when: [{key: destination.port, notValues: ['81']}, {key: source.namespace, values: [a]}]}"
    )
    ports, not_port = permission(rule)
    assert ors(ports) == [{"destinationPort": 80}]
    assert ors(not_port["notRule"]) == [{"destinationPort": 81}]
    ip, ns = principal(rule)
    assert "directRemoteIp" in ors(ip)[0]
    assert "authenticated" in ors(ns)[0]


def test_envoy_metadata_condition() -> None:
    rule = "{when: [{key: 'experimental.envoy.filters.a.b[c]', values: [x, '[y]']}]}"
    (part,) = permission(rule)
    assert part == {
        "metadata": {
            "filter": "envoy.filters.a.b",
            "path": [{"key": "c"}],
            "value": {
                "orMatch": {
                    "valueMatchers": [
                        {"stringMatch": {"exact": "x"}},
                        {"listMatch": {"oneOf": {"stringMatch": {"exact": "y"}}}},
                    ]
                }
            },
        }
    }


def test_jwt_attributes_never_match_without_request_authentication() -> None:
    never = {"notId": {"any": True}}
    (part,) = principal("{from: [{source: {requestPrincipals: ['*']}}]}")
    assert part == never
    (part,) = principal("{when: [{key: 'request.auth.claims[group]', values: [admin]}]}")
    assert part == never
    # notValues of a JWT attribute therefore match every request.
    (part,) = principal("{when: [{key: request.auth.audiences, notValues: [x]}]}")
    assert part == {"notId": never}


def test_unknown_condition_key_skips_the_rule() -> None:
    for action in ("ALLOW", "DENY"):
        built = compile_rule("{when: [{key: source.bogus, values: [x]}]}", action)  # type: ignore[arg-type]
        assert built is None


def test_regex_quoting_is_gos() -> None:
    assert quote_meta("a.b-c_d/e") == r"a\.b-c_d/e"
    assert quote_meta("(x)[y]{z}^$|?*+\\") == r"\(x\)\[y\]\{z\}\^\$\|\?\*\+\\"


# ---- TCP chains: HTTP-only attributes ------------------------------------------------------


def test_allow_rule_with_http_attributes_is_dropped_on_tcp() -> None:
    assert compile_rule("{to: [{operation: {paths: [/admin]}}]}", tcp=True) is None
    assert compile_rule("{to: [{operation: {ports: ['80'], hosts: [a]}}]}", tcp=True) is None
    rule = "{when: [{key: 'request.headers[x]', values: [y]}]}"
    assert compile_rule(rule, tcp=True) is None
    # Ports, IPs, identities and SNI exist on TCP: such rules stay.
    rule = (
        "{from: [{source: {ipBlocks: [1.1.1.1]}}], to: [{operation: {ports: ['443']}}], "
        "when: [{key: connection.sni, values: [a.example]}]}"
    )
    assert compile_rule(rule, tcp=True) == compile_rule(rule)


def test_deny_rule_drops_http_attributes_on_tcp_and_matches_more() -> None:
    # Only HTTP attributes: the rule denies every connection.
    assert permission("{to: [{operation: {paths: [/admin*]}}]}", action="DENY", tcp=True) == [
        {"any": True}
    ]
    # With a port: every connection to that port.
    rule = "{to: [{operation: {paths: [/admin*], ports: ['8080']}}]}"
    (ports,) = permission(rule, action="DENY", tcp=True)
    assert ors(ports) == [{"destinationPort": 8080}]
    rule = (
        "{from: [{source: {ipBlocks: [1.1.1.1]}}], "
        "when: [{key: 'request.headers[x]', values: [y]}]}"
    )
    (ip,) = principal(rule, action="AUDIT", tcp=True)
    assert "directRemoteIp" in ors(ip)[0]


def test_values_with_no_envoy_form() -> None:
    # A port past 65535 or a bad CIDR: ALLOW drops the rule, DENY drops the value.
    bad = "{to: [{operation: {ports: ['70000', '80']}}]}"
    assert compile_rule(bad) is None
    (ports,) = permission(bad, action="DENY")
    assert ors(ports) == [{"destinationPort": 80}]
