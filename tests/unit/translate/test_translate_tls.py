"""TLS with Kubernetes Secrets: DestinationRule credentialName (gateways only), SDS secrets
a proxy gets, and Gateway servers that terminate TLS (SIMPLE/MUTUAL) or pass it through."""

from __future__ import annotations

from typing import Any

from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2
from tests.golden.seedworld import decode, gateway_proxy, sleep_proxy, step_resources

from meshgate.model.snapshot import Snapshot
from meshgate.translate import translate
from meshgate.translate.output import ProxyConfig

CNN = "outbound|443||edition.cnn.com"

ORIGINATE = """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: cnn}
spec:
  hosts: [edition.cnn.com]
  location: MESH_EXTERNAL
  ports: [{number: 443, name: https, protocol: HTTPS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: cnn}
spec:
  host: edition.cnn.com
  trafficPolicy:
    tls: {mode: MODE, credentialName: cnn-cred, sni: edition.cnn.com, subjectAltNames: [a.b]}
---
apiVersion: v1
kind: Secret
metadata: {name: cnn-cred, namespace: istio-system}
type: kubernetes.io/tls
stringData: {tls.crt: CERT, tls.key: KEY, ca.crt: CA}
---
apiVersion: v1
kind: Secret
metadata: {name: unrelated, namespace: istio-system}
stringData: {tls.crt: X, tls.key: Y}
"""


def _configs(extra: str) -> tuple[ProxyConfig, ProxyConfig]:
    snap = Snapshot.build(step_resources(4) + decode(extra, "extra.yaml"))
    return translate(snap, gateway_proxy(snap)), translate(snap, sleep_proxy(snap))


def _upstream(config: ProxyConfig, name: str) -> Any:
    (cluster,) = [c for c in config.clusters if c.name == name]
    ctx = tls_pb2.UpstreamTlsContext()
    assert cluster.transport_socket.typed_config.Unpack(ctx)
    return ctx


def _secrets(config: ProxyConfig) -> dict[str, Any]:
    return {s.name: s for s in config.secrets}


def test_simple_credential_on_the_gateway_uses_the_ca_secret() -> None:
    gateway, sidecar = _configs(ORIGINATE.replace("MODE", "SIMPLE"))
    common = _upstream(gateway, CNN).common_tls_context
    combined = common.combined_validation_context
    assert combined.validation_context_sds_secret_config.name == "kubernetes://cnn-cred-cacert"
    assert combined.validation_context_sds_secret_config.sds_config.HasField("ads")
    sans = combined.default_validation_context.match_typed_subject_alt_names
    assert [m.matcher.exact for m in sans] == ["a.b"]
    assert not common.tls_certificate_sds_secret_configs  # SIMPLE: no client certificate
    # Only the referenced secret, built from the Secret's ca.crt; the key never leaves.
    secrets = _secrets(gateway)
    assert list(secrets) == ["kubernetes://cnn-cred-cacert"]
    assert secrets["kubernetes://cnn-cred-cacert"].validation_context.trusted_ca.inline_bytes == (
        b"CA"
    )
    # The sidecar ignores credentialName: the OS trust store, no SDS, no secret.
    side = _upstream(sidecar, CNN).common_tls_context
    assert side.validation_context.trusted_ca.filename == "/etc/ssl/certs/ca-certificates.crt"
    assert not side.HasField("combined_validation_context")
    assert sidecar.secrets == []


def test_mutual_credential_sends_certificate_and_ca() -> None:
    gateway, _ = _configs(ORIGINATE.replace("MODE", "MUTUAL"))
    common = _upstream(gateway, CNN).common_tls_context
    assert [c.name for c in common.tls_certificate_sds_secret_configs] == ["kubernetes://cnn-cred"]
    secrets = _secrets(gateway)
    assert sorted(secrets) == ["kubernetes://cnn-cred", "kubernetes://cnn-cred-cacert"]
    cert = secrets["kubernetes://cnn-cred"].tls_certificate
    assert (cert.certificate_chain.inline_bytes, cert.private_key.inline_bytes) == (b"CERT", b"KEY")


def test_secret_of_another_namespace_is_not_served() -> None:
    moved = ORIGINATE.replace("MODE", "MUTUAL").replace(
        "name: cnn-cred, namespace: istio-system", "name: cnn-cred, namespace: default"
    )
    gateway, _ = _configs(moved)
    assert _upstream(gateway, CNN).common_tls_context.tls_certificate_sds_secret_configs
    assert gateway.secrets == []


HTTPS_SERVER = """apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: secure, namespace: istio-system}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: [aliyun.com]
    tls: TLS
  - port: {number: 443, name: tls, protocol: TLS}
    hosts: [edition.cnn.com]
    tls: {mode: PASSTHROUGH}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: secure, namespace: istio-system}
spec:
  hosts: [aliyun.com, edition.cnn.com]
  gateways: [secure]
  http:
  - route: [{destination: {host: aliyun.com, port: {number: 80}}}]
  tls:
  - match: [{sniHosts: [edition.cnn.com]}]
    route: [{destination: {host: edition.cnn.com, port: {number: 443}}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: cnn-tls, namespace: istio-system}
spec:
  hosts: [edition.cnn.com]
  location: MESH_EXTERNAL
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
---
apiVersion: v1
kind: Secret
metadata: {name: aliyun-cert, namespace: istio-system}
type: kubernetes.io/tls
stringData: {tls.crt: CERT, tls.key: KEY, ca.crt: CA}
"""


def _gateway(tls: str) -> ProxyConfig:
    snap = Snapshot.build(step_resources(4) + decode(HTTPS_SERVER.replace("TLS", tls, 1), "g"))
    return translate(snap, gateway_proxy(snap))


def _listener(config: ProxyConfig, name: str) -> Any:
    (listener,) = [item for item in config.listeners if item.name == name]
    return listener


def _downstream(chain: Any) -> Any:
    ctx = tls_pb2.DownstreamTlsContext()
    assert chain.transport_socket.typed_config.Unpack(ctx)
    return ctx


def _route_name(chain: Any) -> str:
    hcm = hcm_pb2.HttpConnectionManager()
    assert chain.filters[0].typed_config.Unpack(hcm)
    return str(hcm.rds.route_config_name)


def test_simple_server_terminates_with_sds_and_routes_by_host() -> None:
    config = _gateway("{mode: SIMPLE, credentialName: aliyun-cert}")
    listener = _listener(config, "0.0.0.0_443")
    assert [f.name for f in listener.listener_filters] == ["envoy.filters.listener.tls_inspector"]
    chains = {tuple(c.filter_chain_match.server_names): c for c in listener.filter_chains}
    assert set(chains) == {("aliyun.com",), ("edition.cnn.com",)}
    https = chains[("aliyun.com",)]
    ctx = _downstream(https)
    common = ctx.common_tls_context
    assert [c.name for c in common.tls_certificate_sds_secret_configs] == [
        "kubernetes://aliyun-cert"
    ]
    assert list(common.alpn_protocols) == ["h2", "http/1.1"]
    assert not ctx.require_client_certificate.value
    assert not common.HasField("combined_validation_context")
    route = "https.443.https.secure.istio-system"
    assert _route_name(https) == route
    (rc,) = [r for r in config.routes if r.name == route]
    assert [v.name for v in rc.virtual_hosts] == ["aliyun.com:443"]
    assert rc.virtual_hosts[0].routes[0].route.cluster == "outbound|80||aliyun.com"
    # PASSTHROUGH beside it, unchanged: SNI -> tcp_proxy, no TLS context.
    assert not chains[("edition.cnn.com",)].HasField("transport_socket")
    assert list(_secrets(config)) == ["kubernetes://aliyun-cert"]


def test_mutual_server_requires_and_validates_client_certificates() -> None:
    config = _gateway("{mode: MUTUAL, credentialName: aliyun-cert, subjectAltNames: [c.d]}")
    (https,) = [
        c
        for c in _listener(config, "0.0.0.0_443").filter_chains
        if list(c.filter_chain_match.server_names) == ["aliyun.com"]
    ]
    ctx = _downstream(https)
    assert ctx.require_client_certificate.value
    combined = ctx.common_tls_context.combined_validation_context
    assert combined.validation_context_sds_secret_config.name == "kubernetes://aliyun-cert-cacert"
    assert [
        m.matcher.exact for m in combined.default_validation_context.match_typed_subject_alt_names
    ] == ["c.d"]
    assert sorted(_secrets(config)) == [
        "kubernetes://aliyun-cert",
        "kubernetes://aliyun-cert-cacert",
    ]


def test_file_certificates_need_no_secret() -> None:
    config = _gateway(
        "{mode: MUTUAL, serverCertificate: /c.pem, privateKey: /k.pem, caCertificates: /ca.pem}"
    )
    (https,) = [
        c for c in _listener(config, "0.0.0.0_443").filter_chains if c.HasField("transport_socket")
    ]
    common = _downstream(https).common_tls_context
    assert common.tls_certificates[0].certificate_chain.filename == "/c.pem"
    assert common.tls_certificates[0].private_key.filename == "/k.pem"
    assert common.validation_context.trusted_ca.filename == "/ca.pem"
    assert config.secrets == []


def test_istio_mutual_server_requires_a_mesh_client_certificate() -> None:
    config = _gateway("{mode: ISTIO_MUTUAL}")
    listener = _listener(config, "0.0.0.0_443")
    (chain,) = [c for c in listener.filter_chains if c.HasField("transport_socket")]
    ctx = _downstream(chain)
    assert ctx.require_client_certificate.value
    common = ctx.common_tls_context
    assert [c.name for c in common.tls_certificate_sds_secret_configs] == ["default"]
    assert common.combined_validation_context.validation_context_sds_secret_config.name == "ROOTCA"
    # The translator only refers to the mesh identity; the control plane serves it.
    assert config.secrets == []


def test_two_servers_claiming_one_host_make_one_chain() -> None:
    twice = """apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: twice, namespace: istio-system}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: 443, name: a, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: SIMPLE, credentialName: one}
  - port: {number: 443, name: b, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: SIMPLE, credentialName: two}
"""
    snap = Snapshot.build(step_resources(4) + decode(twice, "twice.yaml"))
    config = translate(snap, gateway_proxy(snap))
    (chain,) = _listener(config, "0.0.0.0_443").filter_chains
    assert not chain.filter_chain_match.server_names  # "*": any SNI
    assert _route_name(chain) == "https.443.a.twice.istio-system"
