"""Gateway rules (Istio's ValidateGateway, validateServer, validateTLSOptions).

Rules of this module:
- The Gateway's name is a DNS label (no dots): routes refer to it as ``namespace/name``.
- A Gateway annotated ``internal.istio.io/gateway-semantics: gateway`` (converted from the
  Kubernetes Gateway API) keeps Istio's exemptions: any name, and ``~/`` server hosts.
- Every server has hosts (``[namespace/]dnsName``, FQDNs or wildcards, IPs allowed, no
  short names, ``namespace`` is ``*``, ``.`` or a DNS label) and a named port with a
  protocol Istio knows; port names are unique across servers; ``targetPort`` is refused.
- ``bind`` is an IP, or a ``unix://`` path with port number 0.
- HTTPS and TLS servers need ``tls``; other protocols may not have it, except an HTTP
  server whose passthrough ``tls`` only redirects to HTTPS.
- Server TLS settings (shared with Sidecar ingress): ISTIO_MUTUAL takes no certificate
  fields; one certificate source at most; SIMPLE/MUTUAL/OPTIONAL_MUTUAL need a
  credentialName or certificate and key, MUTUAL also a CA bundle; a CRL not with
  credentialName nor SIMPLE.
"""

from __future__ import annotations

from collections import Counter

from meshgate.api.kinds import istio_networking as net
from meshgate.validation import common as c
from meshgate.validation.findings import Findings, rule

# Envoy's cipher suite names (Istio's ValidCipherSuites); anything else is warned.
CIPHER_SUITES = frozenset(
    {
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
        "ECDHE-ECDSA-AES128-SHA",
        "ECDHE-RSA-AES128-SHA",
        "ECDHE-ECDSA-AES256-SHA",
        "ECDHE-RSA-AES256-SHA",
        "AES128-GCM-SHA256",
        "AES256-GCM-SHA384",
        "AES128-SHA",
        "AES256-SHA",
        "DES-CBC3-SHA",
    }
)


# Istio's constants.InternalGatewaySemantics / GatewaySemanticsGateway.
GATEWAY_SEMANTICS = "internal.istio.io/gateway-semantics"


@rule(net.Gateway)
def _gateway(gw: net.Gateway, findings: Findings) -> None:
    gateway_api = (gw.metadata.annotations or {}).get(GATEWAY_SEMANTICS) == "gateway"
    if gw.name and not gateway_api and not c.is_dns1123_label(gw.name):
        findings.error(
            "MG1055",
            f"invalid gateway name {gw.name!r}: use a DNS label (no dots)",
            "metadata",
            "name",
        )
    out = findings.at("spec")
    servers = gw.spec.servers
    if not servers:
        out.error("MG1009", "a Gateway needs at least one server", "servers")
    for i, server in enumerate(servers):
        _server(out.at("servers", i), server, gateway_api)
    names = Counter(s.port.name or "" for s in servers)
    for i, server in enumerate(servers):
        name = server.port.name or ""
        if name and names[name] > 1:
            out.error("MG1016", f"duplicate port name {name!r}", "servers", i, "port", "name")
        tls = server.tls
        if tls is not None and tls.https_redirect and not c.is_http(server.port.protocol):
            out.warn(
                "MG1054",
                "tls.httpsRedirect should only be used with HTTP servers",
                "servers",
                i,
                "tls",
                "httpsRedirect",
            )


def _server(out: Findings, server: net.Server, gateway_api: bool) -> None:
    if not server.hosts:
        out.error("MG1009", "a server needs at least one host", "hosts")
    for j, host in enumerate(server.hosts or []):
        reason = c.namespaced_host_problem(host, gateway=True, gateway_semantics=gateway_api)
        out.check("MG1001", reason, "hosts", j)
    port = server.port
    bind = server.bind or ""
    port_ok = True
    if c.protocol_of(port.protocol) == "unsupported":
        port_ok = False
        out.error("MG1015", f"invalid protocol {port.protocol!r}", "port", "protocol")
    if port.number > 0 or not bind.startswith(c.UNIX_PREFIX):
        reason = c.port_problem(port.number)
        port_ok = port_ok and reason is None
        out.check("MG1003", reason, "port", "number")
    if port.target_port:
        port_ok = False
        out.error("MG1052", "targetPort has no impact on Gateways", "port", "targetPort")
    if not port.name:
        port_ok = False
        out.error("MG1052", "port name must be set", "port", "name")
    if bind.startswith(c.UNIX_PREFIX):
        out.check("MG1053", c.unix_path_problem(bind[len(c.UNIX_PREFIX) :]), "bind")
        if port.number != 0:
            out.error("MG1053", "port number must be 0 with a unix domain socket", "port", "number")
    elif bind:
        out.check("MG1053", c.ip_problem(bind), "bind")
    if server.tls is not None:
        server_tls(out.at("tls"), server.tls)
    if not port_ok:
        return
    tls = server.tls
    if c.is_tls(port.protocol) and tls is None:
        out.error("MG1035", f"a {port.protocol} server must have tls settings", "tls")
    elif not c.is_tls(port.protocol) and tls is not None:
        if c.is_http(port.protocol):
            passthrough = tls.effective_mode in ("PASSTHROUGH", "AUTO_PASSTHROUGH")
            files = tls.ca_certificates or tls.private_key or tls.server_certificate
            if not passthrough or files:
                out.error(
                    "MG1054",
                    "a plain HTTP server cannot have TLS settings (only httpsRedirect)",
                    "tls",
                )
        else:
            out.error("MG1054", "a server that is not HTTPS or TLS cannot have TLS settings", "tls")


def server_tls(out: Findings, tls: net.ServerTLSSettings) -> None:
    """Istio's validateTLSOptions, for Gateway servers and Sidecar ingress listeners."""
    if tls.min_protocol_version in ("TLSV1_0", "TLSV1_1") and not tls.cipher_suites:
        out.warn(
            "MG1035",
            "TLS versions below TLSV1_2 need compatible cipherSuites set",
            "minProtocolVersion",
        )
    suites = tls.cipher_suites or []
    unknown = sorted(
        {s for s in suites if s and s != "ALL" and s[0].isalnum() and s not in CIPHER_SUITES}
    )
    if unknown:
        out.warn("MG1035", f"ignoring invalid cipher suites: {unknown}", "cipherSuites")
    if len(set(suites)) != len(suites):
        out.warn("MG1035", "ignoring duplicate cipher suites", "cipherSuites")
    mode = tls.effective_mode
    certs = tls.tls_certificates or []
    if mode == "ISTIO_MUTUAL":
        for value, wire in (
            (tls.server_certificate, "serverCertificate"),
            (tls.private_key, "privateKey"),
            (tls.ca_certificates, "caCertificates"),
            (certs, "tlsCertificates"),
            (tls.credential_name, "credentialName"),
            (tls.credential_names, "credentialNames"),
        ):
            if value:
                out.error("MG1035", f"ISTIO_MUTUAL uses mesh certificates: remove {wire}", wire)
        return
    if mode in ("PASSTHROUGH", "AUTO_PASSTHROUGH") and (
        tls.ca_crl
        or tls.server_certificate
        or tls.private_key
        or tls.ca_certificates
        or certs
        or tls.credential_name
        or tls.credential_names
    ):
        out.warn("MG1035", f"{mode} mode does not use certificates; they are ignored", "mode")
    sources = sum(
        bool(x)
        for x in (
            tls.server_certificate and tls.private_key,
            tls.credential_name,
            tls.credential_names,
            certs,
        )
    )
    if sources > 1:
        out.error(
            "MG1035",
            "set only one of credentialName, credentialNames, serverCertificate/privateKey, "
            "tlsCertificates",
            "mode",
        )
    terminating = mode in ("SIMPLE", "MUTUAL", "OPTIONAL_MUTUAL")
    if terminating and (tls.credential_name or tls.credential_names):
        return
    if terminating:
        if mode != "SIMPLE" and not tls.ca_certificates:
            out.error("MG1035", f"{mode} needs caCertificates", "caCertificates")
        if len(certs) > 2:
            out.warn("MG1035", f"{mode} supports up to 2 server certificates", "tlsCertificates")
        pairs = [(x.server_certificate, x.private_key) for x in certs] or [
            (tls.server_certificate, tls.private_key)
        ]
        for cert, key in pairs:
            if not cert:
                out.error(
                    "MG1035",
                    f"{mode} needs a server certificate (or credentialName)",
                    "serverCertificate",
                )
            if not key:
                out.error("MG1035", f"{mode} needs a private key (or credentialName)", "privateKey")
    if tls.ca_crl:
        if tls.credential_name:
            out.error("MG1035", "caCrl is not supported with credentialName", "caCrl")
        if mode == "SIMPLE":
            out.error("MG1035", "caCrl is not supported with SIMPLE TLS", "caCrl")
