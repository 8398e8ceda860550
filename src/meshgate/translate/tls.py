"""TLS transport sockets: client side (DestinationRule ``tls``) and gateway server side.

Rules of this module:
- ``credentialName`` becomes SDS references over ADS, named as Istio names them:
  ``kubernetes://NAME`` (certificate and key) and ``kubernetes://NAME-cacert`` (CA bundle),
  the CA one inside a combined validation context whose default part keeps the
  subjectAltNames (Istio's ApplyCustomSDSToClient/ServerCommonTLSContext).
- Client side, ``credentialName`` counts only where the caller allows it (gateways, and
  sidecars under a DestinationRule with a workloadSelector, as in Istio): elsewhere it is
  ignored and the file fields apply, so a sidecar that no rule picked out never waits for
  a secret it may not read.
- ISTIO_MUTUAL (client and server) is mutual TLS with the mesh's identities: the proxy's own
  certificate is SDS `default`, the mesh's trust bundle SDS `ROOTCA` (Istio's names), both
  served by the control plane from the mesh CA. A client checks the server's SPIFFE SANs
  when the DestinationRule lists `subjectAltNames`; a server requires a client certificate
  from the mesh.
- Files (``caCertificates``, ``clientCertificate``, ``serverCertificate``...) are read by
  Envoy itself from the paths given.
"""

from __future__ import annotations

from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2, tls_pb2
from envoy.type.matcher.v3 import string_pb2

from meshgate.model.fields import get, get_list, get_str
from meshgate.model.secrets import CA_SUFFIX, resource_name
from meshgate.translate.pb import ads_source, boolean, pack

TLS_SOCKET = "envoy.transport_sockets.tls"
WORKLOAD_CERT = "default"  # Istio's SDS name of a proxy's own certificate and key
ROOT_CA = "ROOTCA"  # ... and of the mesh's trust bundle
SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"  # Debian's OS trust store, as Istio uses
GATEWAY_ALPN = ("h2", "http/1.1")  # Istio's ALPN for gateway HTTPS servers

_TLS_VERSIONS = {
    "TLS_AUTO": common_pb2.TlsParameters.TLS_AUTO,
    "TLSV1_0": common_pb2.TlsParameters.TLSv1_0,
    "TLSV1_1": common_pb2.TlsParameters.TLSv1_1,
    "TLSV1_2": common_pb2.TlsParameters.TLSv1_2,
    "TLSV1_3": common_pb2.TlsParameters.TLSv1_3,
}


def sds(name: str) -> Any:
    return secret_pb2.SdsSecretConfig(name=name, sds_config=ads_source())


def _san_matchers(names: list[Any]) -> list[Any]:
    return [
        common_pb2.SubjectAltNameMatcher(
            san_type=common_pb2.SubjectAltNameMatcher.DNS,
            matcher=string_pb2.StringMatcher(exact=str(san)),
        )
        for san in names
    ]


def _combined(default: Any, ca_resource: str) -> Any:
    return tls_pb2.CommonTlsContext.CombinedCertificateValidationContext(
        default_validation_context=default,
        validation_context_sds_secret_config=sds(ca_resource),
    )


def ca_resource(credential: str) -> str:
    return resource_name(credential) + CA_SUFFIX


def socket(context: Any) -> Any:
    return base_pb2.TransportSocket(name=TLS_SOCKET, typed_config=pack(context))


def upstream_tls(tls: Any, host: str, *, credentials: bool) -> Any | None:
    """The TLS transport socket for a ClientTLSSettings, or None when it originates nothing.

    ``credentials``: whether ``credentialName`` may be used (see the module's rules).
    """
    mode = get_str(tls, "mode", "DISABLE")
    if mode == "DISABLE":
        return None
    if mode == "ISTIO_MUTUAL":
        return istio_mutual_client(get_str(tls, "sni") or host, get_list(tls, "subject_alt_names"))
    ctx = tls_pb2.UpstreamTlsContext()
    common = ctx.common_tls_context
    ctx.sni = get_str(tls, "sni") or host
    credential = get_str(tls, "credential_name") if credentials else ""
    if mode == "MUTUAL":
        if credential:
            common.tls_certificate_sds_secret_configs.append(sds(resource_name(credential)))
        elif get_str(tls, "client_certificate"):
            cert = common.tls_certificates.add()
            cert.certificate_chain.filename = get_str(tls, "client_certificate")
            cert.private_key.filename = get_str(tls, "private_key")
    if get(tls, "insecure_skip_verify"):
        return socket(ctx)
    validation = common_pb2.CertificateValidationContext()
    validation.match_typed_subject_alt_names.extend(
        _san_matchers(get_list(tls, "subject_alt_names"))
    )
    if credential:
        common.combined_validation_context.CopyFrom(_combined(validation, ca_resource(credential)))
        return socket(ctx)
    # Istio's default for SIMPLE/MUTUAL without caCertificates: the OS trust store.
    validation.trusted_ca.filename = get_str(tls, "ca_certificates") or SYSTEM_CA_BUNDLE
    if get_str(tls, "ca_crl"):
        validation.crl.filename = get_str(tls, "ca_crl")
    common.validation_context.CopyFrom(validation)
    return socket(ctx)


def _spiffe_matchers(names: list[Any]) -> list[Any]:
    """SAN matchers for mesh identities: SPIFFE URIs (Istio's `spiffe://` prefix added to a
    bare `cluster.local/ns/...`), anything else as a DNS name."""
    out = []
    for raw in names:
        name = str(raw)
        if "/ns/" in name and not name.startswith("spiffe://"):
            name = "spiffe://" + name
        kind = common_pb2.SubjectAltNameMatcher.URI if name.startswith("spiffe://") else (
            common_pb2.SubjectAltNameMatcher.DNS)  # fmt: skip
        out.append(
            common_pb2.SubjectAltNameMatcher(
                san_type=kind, matcher=string_pb2.StringMatcher(exact=name)
            )
        )
    return out


def istio_mutual_client(sni: str, subject_alt_names: list[Any]) -> Any:
    """An ISTIO_MUTUAL upstream: the proxy's mesh certificate, the mesh's roots."""
    ctx = tls_pb2.UpstreamTlsContext(sni=sni)
    common = ctx.common_tls_context
    # As Istio's mesh mTLS: TLS 1.3 allowed (Envoy's client default stops at 1.2).
    common.tls_params.tls_minimum_protocol_version = common_pb2.TlsParameters.TLSv1_2
    common.tls_params.tls_maximum_protocol_version = common_pb2.TlsParameters.TLSv1_3
    common.tls_certificate_sds_secret_configs.append(sds(WORKLOAD_CERT))
    validation = common_pb2.CertificateValidationContext()
    validation.match_typed_subject_alt_names.extend(_spiffe_matchers(subject_alt_names))
    common.combined_validation_context.CopyFrom(_combined(validation, ROOT_CA))
    return socket(ctx)


TERMINATING_MODES = frozenset({"SIMPLE", "MUTUAL", "OPTIONAL_MUTUAL", "ISTIO_MUTUAL"})


def terminates(tls: Any) -> bool:
    """Whether a gateway server's TLS settings make the gateway end TLS itself."""
    return get_str(tls, "mode") in TERMINATING_MODES


def downstream_tls(tls: Any) -> Any:
    """The DownstreamTlsContext socket of a terminating (SIMPLE/MUTUAL/ISTIO_MUTUAL) gateway
    server."""
    mode = get_str(tls, "mode")
    ctx = tls_pb2.DownstreamTlsContext()
    common = ctx.common_tls_context
    common.alpn_protocols.extend(GATEWAY_ALPN)
    _tls_params(common, tls)
    if mode == "ISTIO_MUTUAL":
        # Only the mesh's workloads, proven by a certificate from the mesh CA.
        ctx.require_client_certificate.CopyFrom(boolean(True))
        common.tls_certificate_sds_secret_configs.append(sds(WORKLOAD_CERT))
        validation = common_pb2.CertificateValidationContext()
        validation.match_typed_subject_alt_names.extend(
            _spiffe_matchers(get_list(tls, "subject_alt_names"))
        )
        common.combined_validation_context.CopyFrom(_combined(validation, ROOT_CA))
        return socket(ctx)
    credentials = [str(c) for c in get_list(tls, "credential_names")]
    if get_str(tls, "credential_name"):
        credentials.insert(0, get_str(tls, "credential_name"))
    for credential in credentials:
        common.tls_certificate_sds_secret_configs.append(sds(resource_name(credential)))
    if not credentials:
        pairs = [(get_str(tls, "server_certificate"), get_str(tls, "private_key"))]
        for item in get_list(tls, "tls_certificates"):
            pairs.append((get_str(item, "server_certificate"), get_str(item, "private_key")))
        for cert_path, key_path in pairs:
            if cert_path and key_path:
                cert = common.tls_certificates.add()
                cert.certificate_chain.filename = cert_path
                cert.private_key.filename = key_path
    if mode in ("MUTUAL", "OPTIONAL_MUTUAL"):
        ctx.require_client_certificate.CopyFrom(boolean(mode == "MUTUAL"))
        validation = common_pb2.CertificateValidationContext()
        validation.match_typed_subject_alt_names.extend(
            _san_matchers(get_list(tls, "subject_alt_names"))
        )
        validation.verify_certificate_spki.extend(
            str(v) for v in get_list(tls, "verify_certificate_spki")
        )
        validation.verify_certificate_hash.extend(
            str(v) for v in get_list(tls, "verify_certificate_hash")
        )
        ca_credential = get_str(tls, "ca_cert_credential_name")
        if ca_credential or credentials:
            name = ca_resource(ca_credential or credentials[0])
            common.combined_validation_context.CopyFrom(_combined(validation, name))
        else:
            if get_str(tls, "ca_certificates"):
                validation.trusted_ca.filename = get_str(tls, "ca_certificates")
            if get_str(tls, "ca_crl"):
                validation.crl.filename = get_str(tls, "ca_crl")
            common.validation_context.CopyFrom(validation)
    return socket(ctx)


def _tls_params(common: Any, tls: Any) -> None:
    low = get_str(tls, "min_protocol_version")
    high = get_str(tls, "max_protocol_version")
    # Istio's gateway default floor is TLS 1.2.
    common.tls_params.tls_minimum_protocol_version = _TLS_VERSIONS.get(
        low, common_pb2.TlsParameters.TLSv1_2
    )
    if high in _TLS_VERSIONS:
        common.tls_params.tls_maximum_protocol_version = _TLS_VERSIONS[high]
    common.tls_params.cipher_suites.extend(str(c) for c in get_list(tls, "cipher_suites"))


def sds_names(context: Any) -> list[str]:
    """Every SDS resource name an Upstream/DownstreamTlsContext refers to."""
    common = context.common_tls_context
    names = [c.name for c in common.tls_certificate_sds_secret_configs]
    if common.HasField("validation_context_sds_secret_config"):
        names.append(common.validation_context_sds_secret_config.name)
    if common.HasField("combined_validation_context"):
        names.append(common.combined_validation_context.validation_context_sds_secret_config.name)
    return names
