"""ISTIO_MUTUAL is mutual TLS with mesh identities: the proxy's own certificate (SDS
`default`) and the mesh's roots (SDS `ROOTCA`), the server's SPIFFE SAN checked when asked."""

from __future__ import annotations

from envoy.extensions.transport_sockets.tls.v3 import tls_pb2
from tests.golden.seedworld import decode, sleep_proxy, step_resources

from meshgate.model.snapshot import Snapshot
from meshgate.translate import translate

GW = "istio-egressgateway.istio-system.svc.cluster.local"


def _cluster(mode: str, extra: str = "") -> object:
    dr = f"""apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: to-gateway}}
spec:
  host: {GW}
  trafficPolicy: {{tls: {{mode: {mode}, sni: aliyun.com{extra}}}}}
"""
    snap = Snapshot.build(step_resources(4) + decode(dr, "dr.yaml"))
    config = translate(snap, sleep_proxy(snap))
    (cluster,) = [c for c in config.clusters if c.name == f"outbound|80||{GW}"]
    return cluster


def _upstream(cluster: object) -> tls_pb2.UpstreamTlsContext:
    ctx = tls_pb2.UpstreamTlsContext()
    cluster.transport_socket.typed_config.Unpack(ctx)  # type: ignore[attr-defined]
    return ctx


def test_istio_mutual_uses_the_mesh_identity() -> None:
    ctx = _upstream(_cluster("ISTIO_MUTUAL"))
    assert ctx.sni == "aliyun.com"
    common = ctx.common_tls_context
    assert [c.name for c in common.tls_certificate_sds_secret_configs] == ["default"]
    combined = common.combined_validation_context
    assert combined.validation_context_sds_secret_config.name == "ROOTCA"
    assert not combined.default_validation_context.match_typed_subject_alt_names
    assert common.tls_params.tls_maximum_protocol_version == common.tls_params.TLSv1_3


def test_istio_mutual_checks_spiffe_sans() -> None:
    sa = "cluster.local/ns/istio-system/sa/istio-egressgateway-service-account"
    ctx = _upstream(_cluster("ISTIO_MUTUAL", f", subjectAltNames: [{sa}]"))
    (matcher,) = (
        ctx.common_tls_context.combined_validation_context.default_validation_context.match_typed_subject_alt_names
    )
    assert matcher.san_type == matcher.URI and matcher.matcher.exact == "spiffe://" + sa


def test_simple_is_tls_with_the_system_roots() -> None:
    common = _upstream(_cluster("SIMPLE")).common_tls_context
    assert not common.tls_certificate_sds_secret_configs
    assert common.validation_context.trusted_ca.filename == "/etc/ssl/certs/ca-certificates.crt"
