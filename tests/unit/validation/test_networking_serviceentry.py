"""ServiceEntry accept/reject table, modelled on Istio's TestValidateServiceEntries."""

# Case tables keep each YAML case on one line, like Istio's test tables.
# ruff: noqa: E501

from __future__ import annotations

import pytest
from tests.unit.validation.cases import Case, check, params

P80 = "ports: [{number: 80, name: http-valid1, protocol: HTTP}]"

CASES = [
    Case("discovery type DNS", None, f"hosts: [google.com]\n{P80}\nresolution: DNS"),
    Case(
        "discovery type DNS, label tlsMode: istio",
        None,
        f"hosts: [google.com]\n{P80}\nresolution: DNS\n"
        "endpoints: [{address: lon.google.com, labels: {security.istio.io/tlsMode: istio}}]",
    ),
    Case(
        "DNS with wildcard host and no endpoints (ValidateFQDN)",
        "MG1006",
        f"hosts: ['*.google.com']\n{P80}\nresolution: DNS",
    ),
    Case(
        "DNS_ROUND_ROBIN wildcard host, no endpoints",
        "MG1006",
        f"hosts: ['*.google.com']\n{P80}\nresolution: DNS_ROUND_ROBIN",
    ),
    Case(
        "DNS wildcard host with endpoints",
        None,
        f"hosts: ['*.google.com']\n{P80}\nresolution: DNS\nendpoints: [{{address: a.google.com}}]",
    ),
    Case(
        "DNS_ROUND_ROBIN with two endpoints",
        "MG1014",
        f"hosts: [google.com]\n{P80}\nresolution: DNS_ROUND_ROBIN\n"
        "endpoints: [{address: a.google.com}, {address: b.google.com}]",
    ),
    Case(
        "DNS_ROUND_ROBIN with one endpoint",
        None,
        f"hosts: [google.com]\n{P80}\nresolution: DNS_ROUND_ROBIN\nendpoints: [{{address: a.b.com}}]",
    ),
    Case(
        "DNS endpoint not an FQDN nor IP",
        "MG1017",
        f"hosts: [google.com]\n{P80}\nresolution: DNS\nendpoints: [{{address: '*.lon.google.com'}}]",
    ),
    Case(
        "DNS endpoint IP",
        None,
        f"hosts: [google.com]\n{P80}\nresolution: DNS\nendpoints: [{{address: 1.1.1.1}}]",
    ),
    Case(
        "DNS endpoint port not declared by the entry",
        "MG1018",
        f"hosts: [google.com]\n{P80}\nresolution: DNS\n"
        "endpoints: [{address: a.b.com, ports: {other: 8080}}]",
    ),
    Case(
        "DNS endpoint port out of range",
        "MG1003",
        f"hosts: [google.com]\n{P80}\nresolution: DNS\n"
        "endpoints: [{address: a.b.com, ports: {http-valid1: 70000}}]",
    ),
    Case(
        "endpoint labels invalid (labels.Instance.Validate)",
        "MG1048",
        f"hosts: [google.com]\n{P80}\nresolution: DNS\n"
        "endpoints: [{address: a.b.com, labels: {'bad key!': x}}]",
    ),
    Case("no hosts", "MG1001", f"hosts: []\n{P80}\nresolution: DNS"),
    Case("full wildcard host", "MG1002", f"hosts: ['*']\n{P80}\nresolution: NONE"),
    Case("bad host label", "MG1001", f"hosts: [foo.*.com]\n{P80}\nresolution: NONE"),
    Case("host with all-numeric TLD", "MG1001", f"hosts: [foo.123]\n{P80}\nresolution: NONE"),
    Case(
        "upper-case host is a valid DNS label for Istio",
        None,
        f"hosts: [Foo.Example.com]\n{P80}\nresolution: NONE",
    ),
    Case("host with trailing dot", None, f"hosts: [google.com.]\n{P80}\nresolution: NONE"),
    Case(
        "partial wildcard host is only warned",
        None,
        f"hosts: ['*foo.com']\n{P80}\nresolution: NONE",
    ),
    Case(
        "resolution NONE with endpoints",
        "MG1007",
        f"hosts: [google.com]\n{P80}\nresolution: NONE\nendpoints: [{{address: 1.1.1.1}}]",
    ),
    Case(
        "resolution NONE with CIDR address",
        None,
        f"hosts: [google.com]\naddresses: [10.10.0.0/16]\n{P80}\nresolution: NONE",
    ),
    Case(
        "CIDR address with DNS resolution",
        "MG1008",
        f"hosts: [google.com]\naddresses: [10.10.0.0/16]\n{P80}\nresolution: DNS",
    ),
    Case(
        "bad address",
        "MG1017",
        f"hosts: [google.com]\naddresses: [10.10.0.300]\n{P80}\nresolution: NONE",
    ),
    Case(
        "bad CIDR bits",
        "MG1017",
        f"hosts: [google.com]\naddresses: [10.0.0.0/33]\n{P80}\nresolution: NONE",
    ),
    Case(
        "IPv6 CIDR",
        None,
        f"hosts: [google.com]\naddresses: ['2001:db8::/32']\n{P80}\nresolution: STATIC\n"
        "endpoints: [{address: '2001:db8::1'}]",
    ),
    Case(
        "STATIC endpoint FQDN refused (allowFQDNAddresses=false)",
        "MG1051",
        f"hosts: [google.com]\n{P80}\nresolution: STATIC\nendpoints: [{{address: a.b.com}}]",
    ),
    Case(
        "STATIC endpoint IP",
        None,
        f"hosts: [google.com]\n{P80}\nresolution: STATIC\nendpoints: [{{address: 2.2.2.2}}]",
    ),
    Case(
        "STATIC endpoint without address nor network",
        "MG1051",
        f"hosts: [google.com]\n{P80}\nresolution: STATIC\nendpoints: [{{labels: {{a: b}}}}]",
    ),
    Case(
        "STATIC endpoint with only a network is warned",
        None,
        f"hosts: [google.com]\n{P80}\nresolution: STATIC\nendpoints: [{{network: n1}}]",
    ),
    Case(
        "unix endpoint, one port",
        None,
        "hosts: [uds.local]\nports: [{number: 6553, name: grpc-1, protocol: grpc}]\n"
        "resolution: STATIC\nendpoints: [{address: 'unix:///path/to/socket'}]",
    ),
    Case(
        "unix endpoint, relative path",
        "MG1043",
        "hosts: [uds.local]\nports: [{number: 6553, name: grpc-1, protocol: grpc}]\n"
        "resolution: STATIC\nendpoints: [{address: 'unix://path/to/socket'}]",
    ),
    Case(
        "unix endpoint with two service ports",
        "MG1043",
        "hosts: [uds.local]\nports: [{number: 6553, name: grpc-1, protocol: grpc}, "
        "{number: 80, name: http, protocol: http}]\n"
        "resolution: STATIC\nendpoints: [{address: 'unix:///path/to/socket'}]",
    ),
    Case(
        "unix endpoint with ports",
        "MG1043",
        "hosts: [uds.local]\nports: [{number: 6553, name: grpc-1, protocol: grpc}]\n"
        "resolution: STATIC\nendpoints: [{address: 'unix:///p/s', ports: {grpc-1: 6553}}]",
    ),
    Case(
        "duplicate port names",
        "MG1016",
        "hosts: [google.com]\nports: [{number: 80, name: http, protocol: HTTP}, "
        "{number: 81, name: http, protocol: HTTP}]\nresolution: NONE",
    ),
    Case(
        "duplicate port numbers",
        "MG1004",
        "hosts: [google.com]\nports: [{number: 80, name: a, protocol: HTTP}, "
        "{number: 80, name: b, protocol: HTTP}]\nresolution: NONE",
    ),
    Case(
        "invalid port name",
        "MG1016",
        "hosts: [google.com]\nports: [{number: 80, name: http_1, protocol: HTTP}]\nresolution: NONE",
    ),
    Case(
        "port name with upper case",
        None,
        "hosts: [google.com]\nports: [{number: 80, name: Http, protocol: HTTP}]\nresolution: NONE",
    ),
    Case(
        "unknown protocol",
        "MG1015",
        "hosts: [google.com]\nports: [{number: 80, name: k, protocol: kafka}]\nresolution: NONE",
    ),
    Case(
        "protocol case-insensitive",
        None,
        "hosts: [google.com]\nports: [{number: 80, name: h, protocol: http2}]\nresolution: NONE",
    ),
    Case(
        "port number 0",
        "MG1003",
        "hosts: [google.com]\nports: [{number: 0, name: h, protocol: HTTP}]\nresolution: NONE",
    ),
    Case(
        "bad targetPort",
        "MG1003",
        "hosts: [google.com]\nports: [{number: 80, name: h, protocol: HTTP, targetPort: 70000}]\n"
        "resolution: STATIC\nendpoints: [{address: 1.1.1.1}]",
    ),
    Case(
        "multiple hosts with TCP port and DNS",
        "MG1050",
        "hosts: [a.com, b.com]\nports: [{number: 3306, name: mysql, protocol: TCP}]\n"
        "resolution: DNS",
    ),
    Case(
        "multiple hosts with TCP port and NONE",
        None,
        "hosts: [a.com, b.com]\nports: [{number: 3306, name: mysql, protocol: TCP}]\n"
        "resolution: NONE",
    ),
    Case(
        "multiple hosts with HTTP and TLS ports and DNS",
        None,
        "hosts: [a.com, b.com]\nports: [{number: 80, name: h, protocol: HTTP}, "
        "{number: 443, name: t, protocol: TLS}]\nresolution: DNS",
    ),
    Case(
        "workloadSelector and endpoints",
        "MG1013",
        f"hosts: [google.com]\n{P80}\nresolution: STATIC\nworkloadSelector: {{labels: {{app: a}}}}\n"
        "endpoints: [{address: 1.1.1.1}]",
    ),
    Case(
        "workloadSelector and an explicitly empty endpoints list",
        "MG1013",
        f"hosts: [google.com]\n{P80}\nresolution: STATIC\nworkloadSelector: {{labels: {{app: a}}}}\n"
        "endpoints: []",
    ),
    Case(
        "workloadSelector with wildcard value",
        "MG1049",
        f"hosts: [google.com]\n{P80}\nresolution: STATIC\nlocation: MESH_INTERNAL\n"
        "workloadSelector: {labels: {app: '*'}}",
    ),
    Case(
        "workloadSelector MESH_INTERNAL STATIC",
        None,
        f"hosts: [google.com]\n{P80}\nresolution: STATIC\nlocation: MESH_INTERNAL\n"
        "workloadSelector: {labels: {app: a}}",
    ),
    Case(
        "exportTo ~ alone is allowed for a ServiceEntry",
        None,
        f"hosts: [google.com]\n{P80}\nresolution: DNS\nexportTo: ['~']",
    ),
    Case(
        "exportTo ~ with another namespace",
        "MG1034",
        f"hosts: [google.com]\n{P80}\nresolution: DNS\nexportTo: ['~', ns1]",
    ),
    Case(
        "exportTo * with another namespace",
        "MG1034",
        f"hosts: [google.com]\n{P80}\nresolution: DNS\nexportTo: ['*', ns1]",
    ),
    Case(
        "exportTo . and own namespace are duplicates",
        "MG1034",
        f"hosts: [google.com]\n{P80}\nresolution: DNS\nexportTo: ['.', bar]",
    ),
    Case(
        "exportTo namespaces",
        None,
        f"hosts: [google.com]\n{P80}\nresolution: DNS\nexportTo: [ns1, ns2]",
    ),
    Case(
        "DYNAMIC_DNS wildcard MESH_EXTERNAL",
        None,
        f"hosts: ['*.example.com']\n{P80}\nresolution: DYNAMIC_DNS",
    ),
    Case(
        "DYNAMIC_DNS with non-wildcard host",
        "MG1022",
        f"hosts: [example.com]\n{P80}\nresolution: DYNAMIC_DNS",
    ),
]


@pytest.mark.parametrize("case", params(CASES))
def test_service_entry(case: Case) -> None:
    check("ServiceEntry", case)
