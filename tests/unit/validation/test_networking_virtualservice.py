"""VirtualService accept/reject table, modelled on Istio's TestValidateVirtualService,
TestValidateHTTPRoute, TestValidateTLSRoute, TestValidateTCPRoute and friends."""

# Case tables keep each YAML case on one line, like Istio's test tables.
# ruff: noqa: E501

from __future__ import annotations

import pytest
from tests.unit.validation.cases import Case, check, params

ROUTE = "route: [{destination: {host: foo.baz}}]"


def vs(http: str = ROUTE, hosts: str = "[foo.bar]", extra: str = "") -> str:
    return f"hosts: {hosts}\n{extra}\nhttp: [{{{http}}}]" if http else f"hosts: {hosts}\n{extra}"


CASES = [
    Case("happy", None, vs()),
    Case("ip host", None, vs(hosts="['10.0.0.1']")),
    Case("bad host", "MG1001", vs(hosts="['foo.*.bar']")),
    Case("* host bound to mesh", "MG1002", vs(hosts="['*']")),
    Case("* host bound to a gateway", None, vs(hosts="['*']", extra="gateways: [ns1/gw]")),
    Case(
        "* host bound to a gateway and mesh",
        "MG1002",
        vs(hosts="['*']", extra="gateways: [ns1/gw, mesh]"),
    ),
    Case("duplicate hosts", "MG1056", vs(hosts="['*.foo.bar', 'a.foo.bar']")),
    Case("distinct hosts", None, vs(hosts="['*.foo.bar', 'a.bar.com']")),
    Case("no routes at all", "MG1057", vs(http="")),
    Case("delegate: no hosts, http only", None, "http: [{route: [{destination: {host: a.b}}]}]"),
    Case(
        "delegate with gateways",
        "MG1010",
        "gateways: [ns/gw]\nhttp: [{route: [{destination: {host: a.b}}]}]",
    ),
    Case("delegate with tcp", "MG1010", "tcp: [{route: [{destination: {host: a.b}}]}]"),
    Case(
        "delegate route cannot delegate", "MG1059", "http: [{delegate: {name: d, namespace: ns}}]"
    ),
    Case("root route delegates", None, vs(http="delegate: {name: d, namespace: ns}")),
    Case(
        "root route with route and delegate", "MG1059", vs(http=f"delegate: {{name: d}}, {ROUTE}")
    ),
    Case("gateway name ns/name", None, vs(extra="gateways: [istio-system/gw]")),
    Case("gateway name with bad namespace", "MG1024", vs(extra="gateways: [Ns_1/gw]")),
    Case("legacy gateway name is warned", None, vs(extra="gateways: [gw.istio-system]")),
    Case("no route, redirect or directResponse", "MG1021", vs(http="match: [{uri: {exact: /}}]")),
    Case("redirect and route", "MG1060", vs(http=f"redirect: {{uri: /a}}, {ROUTE}")),
    Case(
        "redirect and directResponse",
        "MG1060",
        vs(http="redirect: {uri: /a}, directResponse: {status: 200}"),
    ),
    Case(
        "directResponse and fault",
        "MG1060",
        vs(http="directResponse: {status: 200}, fault: {abort: {httpStatus: 500}}"),
    ),
    Case("directResponse", None, vs(http="directResponse: {status: 503, body: {string: down}}")),
    Case("directResponse bad status", "MG1062", vs(http="directResponse: {status: 1000}")),
    Case(
        "mirror and mirrors",
        "MG1060",
        vs(http=f"{ROUTE}, mirror: {{host: m.com}}, mirrors: [{{destination: {{host: n.com}}}}]"),
    ),
    Case("redirect without anything", "MG1061", vs(http="redirect: {redirectCode: 301}")),
    Case("redirect code not 3xx", "MG1061", vs(http="redirect: {uri: /a, redirectCode: 200}")),
    Case("redirect scheme", "MG1061", vs(http="redirect: {scheme: ftp}")),
    Case("redirect derivePort", None, vs(http="redirect: {derivePort: FROM_REQUEST_PORT}")),
    Case(
        "weights 0 in total",
        "MG1005",
        vs(http="route: [{destination: {host: a.b}}, {destination: {host: c.d}}]"),
    ),
    Case(
        "weights 50/30 accepted",
        None,
        vs(
            http="route: [{destination: {host: a.b}, weight: 50}, {destination: {host: c.d}, weight: 30}]"
        ),
    ),
    Case(
        "negative weight",
        "MG1026",
        vs(
            http="route: [{destination: {host: a.b}, weight: -50}, {destination: {host: c.d}, weight: 150}]"
        ),
    ),
    Case("destination host *", "MG1002", vs(http="route: [{destination: {host: '*'}}]")),
    Case(
        "destination subset not a DNS label",
        "MG1081",
        vs(http="route: [{destination: {host: a.b, subset: v_1}}]"),
    ),
    Case(
        "destination port 0",
        "MG1003",
        vs(http="route: [{destination: {host: a.b, port: {number: 0}}}]"),
    ),
    Case(
        "uri regex compiles",
        None,
        vs(http=f"match: [{{uri: {{regex: '^/foo/[a-z]+$'}}}}], {ROUTE}"),
    ),
    Case(
        "uri regex invalid RE2 (lookahead)",
        "MG1045",
        vs(http=f"match: [{{uri: {{regex: '(?=foo)bar'}}}}], {ROUTE}"),
    ),
    Case(
        "header regex invalid",
        "MG1045",
        vs(http=f"match: [{{headers: {{x: {{regex: '['}}}}}}], {ROUTE}"),
    ),
    Case(
        "empty uri prefix is allowed", None, vs(http=f"match: [{{uri: {{prefix: ''}}}}], {ROUTE}")
    ),
    Case(
        "empty header prefix",
        "MG1046",
        vs(http=f"match: [{{headers: {{x: {{prefix: ''}}}}}}], {ROUTE}"),
    ),
    Case("empty method regex", "MG1046", vs(http=f"match: [{{method: {{regex: ''}}}}], {ROUTE}")),
    Case(
        "two match kinds in one StringMatch",
        "MG0008",
        vs(http=f"match: [{{uri: {{exact: /a, prefix: /b}}}}], {ROUTE}"),
    ),
    Case(
        "bad header name",
        "MG1047",
        vs(http=f"match: [{{headers: {{'x y': {{exact: a}}}}}}], {ROUTE}"),
    ),
    Case(
        "pseudo header match",
        None,
        vs(http=f"match: [{{headers: {{':path': {{exact: /}}}}}}], {ROUTE}"),
    ),
    Case(
        "JWT claim routing on mesh",
        "MG1067",
        vs(http=f"match: [{{headers: {{'@request.auth.claims.group': {{exact: a}}}}}}], {ROUTE}"),
    ),
    Case(
        "JWT claim routing on gateway",
        None,
        vs(
            http=f"match: [{{headers: {{'@request.auth.claims.group': {{exact: a}}}}}}], {ROUTE}",
            extra="gateways: [ns/gw]",
        ),
    ),
    Case(
        "withoutHeaders regex *",
        None,
        vs(http=f"match: [{{withoutHeaders: {{x: {{regex: '*'}}}}}}], {ROUTE}"),
    ),
    Case(
        "match sourceNamespace invalid",
        "MG1030",
        vs(http=f"match: [{{sourceNamespace: 'a.b'}}], {ROUTE}"),
    ),
    Case(
        "match sourceLabels invalid",
        "MG1048",
        vs(http=f"match: [{{sourceLabels: {{'a b': c}}}}], {ROUTE}"),
    ),
    Case("match port out of range", "MG1003", vs(http=f"match: [{{port: 70000}}], {ROUTE}")),
    Case("timeout below 1ms", "MG1044", vs(http=f"{ROUTE}, timeout: 0.1ms")),
    Case("timeout not whole ms", "MG1044", vs(http=f"{ROUTE}, timeout: 1.0005s")),
    Case("timeout", None, vs(http=f"{ROUTE}, timeout: 10s")),
    Case(
        "retries policy with attempts 0", "MG1063", vs(http=f"{ROUTE}, retries: {{retryOn: 5xx}}")
    ),
    Case(
        "retries",
        None,
        vs(http=f"{ROUTE}, retries: {{attempts: 3, perTryTimeout: 2s, retryOn: '5xx,503,reset'}}"),
    ),
    Case(
        "retries unknown retryOn",
        "MG1063",
        vs(http=f"{ROUTE}, retries: {{attempts: 3, retryOn: 'sometimes'}}"),
    ),
    Case("retries negative attempts", "MG1063", vs(http=f"{ROUTE}, retries: {{attempts: -1}}")),
    # Istio's validateHTTPRetry runs ValidateDuration on backoff: at least 1ms.
    Case("retries backoff under 1ms", "MG1044", vs(http=f"{ROUTE}, retries: {{backoff: 0.5ms}}")),
    Case(
        "retries backoff 25ms", None, vs(http=f"{ROUTE}, retries: {{attempts: 2, backoff: 25ms}}")
    ),
    # Istio's validHeaderNameRegex is RFC 7230's token set, so '!', '$', '#', ',' are allowed.
    Case(
        "token header name",
        None,
        vs(http=f"match: [{{headers: {{'x!$#_,': {{exact: a}}}}}}], {ROUTE}"),
    ),
    Case(
        "colons are not token characters",
        "MG1047",
        vs(http=f"match: [{{headers: {{'::': {{exact: a}}}}}}], {ROUTE}"),
    ),
    Case(
        "rewrite uri and uriRegexRewrite",
        "MG1038",
        vs(http=f"{ROUTE}, rewrite: {{uri: /a, uriRegexRewrite: {{match: a, rewrite: b}}}}"),
    ),
    Case("empty rewrite", "MG1064", vs(http=f"{ROUTE}, rewrite: {{}}")),
    Case(
        "uriRegexRewrite without rewrite",
        "MG1064",
        vs(http=f"{ROUTE}, rewrite: {{uriRegexRewrite: {{match: a}}}}"),
    ),
    Case(
        "authority rewritten twice",
        "MG1064",
        vs(http=f"{ROUTE}, rewrite: {{authority: a}}, headers: {{request: {{set: {{host: b}}}}}}"),
    ),
    Case("rewrite and redirect", "MG1060", vs(http="redirect: {uri: /a}, rewrite: {uri: /b}")),
    Case(
        "fault abort http status",
        None,
        vs(http=f"{ROUTE}, fault: {{abort: {{httpStatus: 503, percentage: {{value: 50}}}}}}"),
    ),
    Case(
        "fault abort bad status",
        "MG1065",
        vs(http=f"{ROUTE}, fault: {{abort: {{httpStatus: 1000}}}}"),
    ),
    Case("fault empty", "MG1065", vs(http=f"{ROUTE}, fault: {{}}")),
    Case(
        "fault grpc status unknown",
        "MG1065",
        vs(http=f"{ROUTE}, fault: {{abort: {{grpcStatus: NOPE}}}}"),
    ),
    Case(
        "fault delay percentage > 100",
        "MG1033",
        vs(http=f"{ROUTE}, fault: {{delay: {{fixedDelay: 5s, percentage: {{value: 101}}}}}}"),
    ),
    Case(
        "fault exponential delay",
        "MG1065",
        vs(http=f"{ROUTE}, fault: {{delay: {{exponentialDelay: 5s}}}}"),
    ),
    Case(
        "mirrorPercentage > 100",
        "MG1033",
        vs(http=f"{ROUTE}, mirror: {{host: m.com}}, mirrorPercentage: {{value: 101}}"),
    ),
    Case(
        "cors",
        None,
        vs(
            http=f"{ROUTE}, corsPolicy: {{allowOrigins: [{{exact: 'https://a.com'}}], "
            "allowMethods: [GET, POST], allowHeaders: ['*'], maxAge: 24h}"
        ),
    ),
    Case("cors bad method", "MG1066", vs(http=f"{ROUTE}, corsPolicy: {{allowMethods: [get]}}")),
    Case("cors empty origin", "MG1066", vs(http=f"{ROUTE}, corsPolicy: {{allowOrigins: [{{}}]}}")),
    Case(
        "cors maxAge fractional seconds",
        "MG1066",
        vs(http=f"{ROUTE}, corsPolicy: {{maxAge: 1500ms}}"),
    ),
    Case(
        "request header set :path",
        "MG1047",
        vs(http=f"{ROUTE}, headers: {{request: {{set: {{':path': /x}}}}}}"),
    ),
    Case(
        "response header set host",
        "MG1047",
        vs(http=f"{ROUTE}, headers: {{response: {{set: {{host: x}}}}}}"),
    ),
    Case(
        "header value with bad % variable",
        "MG1047",
        vs(http=f"{ROUTE}, headers: {{request: {{add: {{x-a: 'abc%123'}}}}}}"),
    ),
    Case(
        "header value with %VARIABLE% and %%",
        None,
        vs(http=f"{ROUTE}, headers: {{request: {{add: {{x-a: '%HOSTNAME% 100%%'}}}}}}"),
    ),
    Case(
        "tls route",
        None,
        "hosts: ['*.bar.com']\ntls: [{match: [{sniHosts: [a.bar.com]}], route: [{destination: {host: a.bar.com}}]}]",
    ),
    Case(
        "tls route SNI not within hosts",
        "MG1058",
        "hosts: [a.bar.com]\ntls: [{match: [{sniHosts: [b.other.com]}], route: [{destination: {host: a.bar.com}}]}]",
    ),
    Case(
        "tls route without SNI hosts",
        "MG1031",
        "hosts: [a.bar.com]\ntls: [{match: [{sniHosts: []}], route: [{destination: {host: a.bar.com}}]}]",
    ),
    Case(
        "tls route without route",
        "MG1031",
        "hosts: [a.bar.com]\ntls: [{match: [{sniHosts: [a.bar.com]}]}]",
    ),
    Case(
        "gateway tls route with outbound_ SNI",
        None,
        "hosts: ['outbound_.80_._.e2e.foobar.mesh']\ngateways: [ns/gw]\n"
        "tls: [{match: [{sniHosts: ['outbound_.80_._.e2e.foobar.mesh']}], route: [{destination: {host: e2e.foobar.mesh}}]}]",
    ),
    Case(
        "tcp route bad subnet",
        "MG1017",
        "hosts: [a.com]\ntcp: [{match: [{destinationSubnets: [10.0.0.0/66]}], route: [{destination: {host: a.com}}]}]",
    ),
    Case("tcp route without route", "MG1031", "hosts: [a.com]\ntcp: [{match: [{port: 80}]}]"),
    Case(
        "tcp route",
        None,
        "hosts: [a.com]\ntcp: [{match: [{port: 3306, destinationSubnets: [10.0.0.0/8]}], route: [{destination: {host: a.com}}]}]",
    ),
    Case("exportTo ~ not allowed for VirtualService", "MG1034", vs(extra="exportTo: ['~']")),
]


@pytest.mark.parametrize("case", params(CASES))
def test_virtual_service(case: Case) -> None:
    check("VirtualService", case)
