"""Gateway accept/reject table, modelled on Istio's TestValidateGateway, TestValidateServer,
TestValidateServerPort and TestValidateTlsOptions."""

# Case tables keep each YAML case on one line, like Istio's test tables.

from __future__ import annotations

import pytest
from tests.unit.validation.cases import Case, check, params
from tests.unit.validation.verdict import error_codes


def server(
    hosts: str = "[foo.bar.com]",
    port: str = "{number: 7, name: http, protocol: http}",
    extra: str = "",
) -> str:
    more = f", {extra}" if extra else ""
    return f"servers: [{{hosts: {hosts}, port: {port}{more}}}]"


HTTPS = "{number: 443, name: https, protocol: HTTPS}"

CASES = [
    Case("happy domain", None, server()),
    Case("happy ip host", None, server("['1.1.1.1']")),
    Case("happy ns/name", None, server("[ns1/foo.bar.com]")),
    Case("happy */name", None, server("['*/foo.bar.com']")),
    Case("happy ./name", None, server("[./foo.bar.com]")),
    Case("happy wildcard", None, server("['*']")),
    Case("~/name is for Gateway API only", "MG1001", server("['~/foo.bar.com']")),
    Case("invalid domain ns/name format", "MG1001", server("['ns1/foo.*.bar.com']")),
    Case("invalid domain", "MG1001", server("['foo.*.bar.com']")),
    Case("short name host", "MG1001", server("[foo]")),
    Case("partial wildcard", "MG1001", server("['*bar.com']")),
    Case("empty namespace", "MG1001", server("['/foo.bar.com']")),
    Case("no servers", "MG1009", "servers: []"),
    Case("server without hosts", "MG1009", server("[]")),
    Case("port out of range", "MG1003", server(port="{number: 66000, name: http, protocol: http}")),
    Case("unknown protocol", "MG1015", server(port="{number: 7, name: k, protocol: kafka}")),
    Case("port name required", "MG1052", server(port="{number: 7, protocol: http}")),
    Case(
        "targetPort refused",
        "MG1052",
        server(port="{number: 7, name: h, protocol: http, targetPort: 8080}"),
    ),
    Case(
        "duplicate port names",
        "MG1016",
        "servers: [{hosts: [a.com], port: {number: 80, name: foo, protocol: http}}, "
        "{hosts: [b.com], port: {number: 8080, name: foo, protocol: http}}]",
    ),
    Case("bind ip", None, server(extra="bind: 127.0.0.1")),
    Case("bind bad ip", "MG1053", server(extra="bind: foo.bar")),
    Case(
        "bind unix path with port 0",
        None,
        server(port="{number: 0, name: http, protocol: http}", extra="bind: 'unix://@foobar'"),
    ),
    Case("bind unix path with a port", "MG1053", server(extra="bind: 'unix://@foobar'")),
    Case("port 0 without unix bind", "MG1003", server(port="{number: 0, name: h, protocol: http}")),
    Case("no tls on HTTPS", "MG1035", server(port=HTTPS)),
    Case("tls SIMPLE on HTTP", "MG1054", server(extra="tls: {mode: SIMPLE, credentialName: c}")),
    Case("httpsRedirect on HTTP", None, server(extra="tls: {httpsRedirect: true}")),
    Case(
        "tls on TCP",
        "MG1054",
        server(
            port="{number: 31400, name: tcp, protocol: TCP}", extra="tls: {httpsRedirect: true}"
        ),
    ),
    Case(
        "httpsRedirect on HTTPS is warned",
        None,
        server(port=HTTPS, extra="tls: {httpsRedirect: true}"),
    ),
    Case(
        "SIMPLE with credentialName",
        None,
        server(port=HTTPS, extra="tls: {mode: SIMPLE, credentialName: sds}"),
    ),
    Case(
        "SIMPLE with certificate and key",
        None,
        server(port=HTTPS, extra="tls: {mode: SIMPLE, serverCertificate: a, privateKey: b}"),
    ),
    Case(
        "SIMPLE without server certificate",
        "MG1035",
        server(port=HTTPS, extra="tls: {mode: SIMPLE, privateKey: b}"),
    ),
    Case(
        "SIMPLE without private key",
        "MG1035",
        server(port=HTTPS, extra="tls: {mode: SIMPLE, serverCertificate: a}"),
    ),
    Case(
        "SIMPLE with credentialName and certificate files",
        "MG1035",
        server(
            port=HTTPS,
            extra="tls: {mode: SIMPLE, serverCertificate: a, privateKey: b, credentialName: sds}",
        ),
    ),
    Case(
        "MUTUAL without CA bundle",
        "MG1035",
        server(port=HTTPS, extra="tls: {mode: MUTUAL, serverCertificate: a, privateKey: b}"),
    ),
    Case(
        "MUTUAL with CA bundle",
        None,
        server(
            port=HTTPS,
            extra="tls: {mode: MUTUAL, serverCertificate: a, privateKey: b, caCertificates: c}",
        ),
    ),
    Case(
        "OPTIONAL_MUTUAL with credentialName",
        None,
        server(port=HTTPS, extra="tls: {mode: OPTIONAL_MUTUAL, credentialName: sds}"),
    ),
    Case(
        "ISTIO_MUTUAL with server certificate",
        "MG1035",
        server(port=HTTPS, extra="tls: {mode: ISTIO_MUTUAL, serverCertificate: a}"),
    ),
    Case(
        "ISTIO_MUTUAL with credentialName",
        "MG1035",
        server(port=HTTPS, extra="tls: {mode: ISTIO_MUTUAL, credentialName: a}"),
    ),
    Case("ISTIO_MUTUAL", None, server(port=HTTPS, extra="tls: {mode: ISTIO_MUTUAL}")),
    Case(
        "PASSTHROUGH with certificates is warned",
        None,
        server(port=HTTPS, extra="tls: {mode: PASSTHROUGH, serverCertificate: a}"),
    ),
    Case(
        "AUTO_PASSTHROUGH",
        None,
        server(
            port="{number: 15443, name: tls, protocol: TLS}", extra="tls: {mode: AUTO_PASSTHROUGH}"
        ),
    ),
    Case(
        "SIMPLE tlsCertificates missing a key",
        "MG1035",
        server(port=HTTPS, extra="tls: {mode: SIMPLE, tlsCertificates: [{serverCertificate: a}]}"),
    ),
    Case(
        "CRL with SIMPLE",
        "MG1035",
        server(
            port=HTTPS, extra="tls: {mode: SIMPLE, serverCertificate: a, privateKey: b, caCrl: c}"
        ),
    ),
    Case(
        "invalid cipher suites are only warned",
        None,
        server(port=HTTPS, extra="tls: {mode: SIMPLE, credentialName: c, cipherSuites: [foo]}"),
    ),
]


@pytest.mark.parametrize("case", params(CASES))
def test_gateway(case: Case) -> None:
    check("Gateway", case)


def test_gateway_name_is_a_dns_label() -> None:
    assert "MG1055" in error_codes("Gateway", server(), name="my.gateway")
    assert not error_codes("Gateway", server(), name="my-gateway")


def test_gateway_api_semantics_allow_tilde_hosts_and_any_name() -> None:
    """Istio's ValidateGateway exempts Gateways converted from the Kubernetes Gateway API."""
    semantics = "annotations: {internal.istio.io/gateway-semantics: gateway}"
    tilde = server("['~/foo.bar.com']")
    assert not error_codes("Gateway", tilde, extra_meta=semantics)
    assert not error_codes("Gateway", server(), name="my.gateway", extra_meta=semantics)
    assert "MG1001" in error_codes("Gateway", tilde)
    other = "annotations: {internal.istio.io/gateway-semantics: other}"
    assert "MG1001" in error_codes("Gateway", tilde, extra_meta=other)
