"""Sidecar accept/reject table, modelled on Istio's TestValidateSidecar."""

# Case tables keep each YAML case on one line, like Istio's test tables.
# ruff: noqa: E501

from __future__ import annotations

import pytest
from tests.unit.validation.cases import Case, check, params

CASES = [
    Case("egress ./*", None, "egress: [{hosts: ['./*']}]"),
    Case("egress */*", None, "egress: [{hosts: ['*/*']}]"),
    Case("egress ns/host and ~/*", None, "egress: [{hosts: [ns1/foo.com, '~/*']}]"),
    Case("egress host without namespace", "MG1023", "egress: [{hosts: [foo.com]}]"),
    Case("egress short name", "MG1023", "egress: [{hosts: [ns1/foo]}]"),
    Case("egress partial wildcard", "MG1023", "egress: [{hosts: ['ns1/*foo.com']}]"),
    Case("egress bad namespace", "MG1023", "egress: [{hosts: ['ns_1/foo.com']}]"),
    Case("egress empty namespace", "MG1023", "egress: [{hosts: ['/foo.com']}]"),
    Case("egress wildcard suffix", None, "egress: [{hosts: ['ns1/*.foo.com']}]"),
    Case("egress no hosts", "MG1023", "egress: [{hosts: []}]"),
    Case("duplicate egress hosts are warned", None, "egress: [{hosts: [ns1/a.com, ns1/a.com]}]"),
    Case("empty sidecar", "MG1074", "{}"),
    Case("only outboundTrafficPolicy", None, "outboundTrafficPolicy: {mode: REGISTRY_ONLY}"),
    Case(
        "two catch-all egress listeners", "MG1074", "egress: [{hosts: ['*/*']}, {hosts: ['*/*']}]"
    ),
    Case(
        "catch-all egress listener not last",
        "MG1074",
        "egress: [{hosts: ['*/*']}, {port: {number: 80, protocol: HTTP, name: h}, hosts: ['*/*']}]",
    ),
    Case(
        "egress listeners with ports then catch-all",
        None,
        "egress: [{port: {number: 80, protocol: HTTP, name: h}, hosts: ['*/*']}, {hosts: ['*/*']}]",
    ),
    Case(
        "duplicate egress ports",
        "MG1074",
        "egress: [{port: {number: 80, protocol: HTTP, name: a}, hosts: ['*/*']}, "
        "{port: {number: 80, protocol: HTTP, name: b}, hosts: ['*/*']}]",
    ),
    Case(
        "egress port bad protocol",
        "MG1015",
        "egress: [{port: {number: 80, protocol: kafka}, hosts: ['*/*']}]",
    ),
    Case(
        "egress port 0 without unix bind",
        "MG1074",
        "egress: [{port: {number: 0, protocol: HTTP}, hosts: ['*/*']}]",
    ),
    Case(
        "egress unix bind with port 0",
        None,
        "egress: [{port: {number: 0, protocol: HTTP}, bind: 'unix:///tmp/s', hosts: ['*/*']}]",
    ),
    Case(
        "egress unix bind with IPTABLES capture",
        "MG1074",
        "egress: [{port: {number: 0, protocol: HTTP}, bind: 'unix:///tmp/s', "
        "captureMode: IPTABLES, hosts: ['*/*']}]",
    ),
    Case(
        "egress bad bind",
        "MG1053",
        "egress: [{port: {number: 80, protocol: HTTP}, bind: foo, hosts: ['*/*']}]",
    ),
    Case(
        "targetPort refused",
        "MG1052",
        "egress: [{port: {number: 80, protocol: HTTP, targetPort: 8080}, hosts: ['*/*']}]",
    ),
    Case(
        "ingress",
        None,
        "ingress: [{port: {number: 9080, protocol: HTTP, name: h}, defaultEndpoint: '127.0.0.1:8080'}]",
    ),
    Case(
        "ingress default endpoint :port",
        None,
        "ingress: [{port: {number: 9080, protocol: HTTP}, defaultEndpoint: ':8080'}]",
    ),
    Case(
        "ingress default endpoint unix",
        None,
        "ingress: [{port: {number: 9080, protocol: HTTP}, defaultEndpoint: 'unix:///tmp/a'}]",
    ),
    Case(
        "ingress default endpoint other host",
        "MG1074",
        "ingress: [{port: {number: 9080, protocol: HTTP}, defaultEndpoint: '1.1.1.1:8080'}]",
    ),
    Case(
        "ingress default endpoint bad port",
        "MG1074",
        "ingress: [{port: {number: 9080, protocol: HTTP}, defaultEndpoint: '127.0.0.1:http'}]",
    ),
    Case(
        "ingress duplicate ports",
        "MG1074",
        "ingress: [{port: {number: 9080, protocol: HTTP}}, {port: {number: 9080, protocol: TCP}}]",
    ),
    Case(
        "ingress port out of range", "MG1003", "ingress: [{port: {number: 90000, protocol: HTTP}}]"
    ),
    Case(
        "ingress tls SIMPLE on HTTPS",
        None,
        "ingress: [{port: {number: 8443, protocol: HTTPS}, tls: {mode: SIMPLE, "
        "serverCertificate: a, privateKey: b}}]",
    ),
    Case(
        "ingress tls credentialName",
        "MG1074",
        "ingress: [{port: {number: 8443, protocol: HTTPS}, tls: {mode: SIMPLE, credentialName: c}}]",
    ),
    Case(
        "ingress tls ISTIO_MUTUAL",
        "MG1074",
        "ingress: [{port: {number: 8443, protocol: HTTPS}, tls: {mode: ISTIO_MUTUAL}}]",
    ),
    Case(
        "ingress tls on HTTP port",
        "MG1054",
        "ingress: [{port: {number: 8080, protocol: HTTP}, tls: {mode: SIMPLE, "
        "serverCertificate: a, privateKey: b}}]",
    ),
    Case(
        "egressProxy with ALLOW_ANY",
        None,
        "outboundTrafficPolicy: {mode: ALLOW_ANY, egressProxy: {host: proxy.com, port: {number: 80}}}",
    ),
    Case(
        "egressProxy with REGISTRY_ONLY",
        "MG1042",
        "outboundTrafficPolicy: {mode: REGISTRY_ONLY, egressProxy: {host: proxy.com, port: {number: 80}}}",
    ),
    Case(
        "egressProxy without port",
        "MG1042",
        "outboundTrafficPolicy: {mode: ALLOW_ANY, egressProxy: {host: proxy.com}}",
    ),
    Case(
        "egressProxy wildcard host",
        "MG1042",
        "outboundTrafficPolicy: {mode: ALLOW_ANY, egressProxy: {host: '*.proxy.com', port: {number: 80}}}",
    ),
    Case(
        "workloadSelector with wildcard",
        "MG1049",
        "workloadSelector: {labels: {app: '*'}}\negress: [{hosts: ['./*']}]",
    ),
    Case("inbound connection pool empty", "MG1069", "inboundConnectionPool: {}"),
]


@pytest.mark.parametrize("case", params(CASES))
def test_sidecar(case: Case) -> None:
    check("Sidecar", case)
