"""ISTIO_MUTUAL stays plaintext until meshgate has a mesh CA: no cluster may wait for SDS
secrets nobody serves (Envoy would stall every CDS update for 15 s)."""

from __future__ import annotations

from tests.golden.seedworld import decode, sleep_proxy, step_resources

from meshgate.model.snapshot import Snapshot
from meshgate.translate import translate

GW = "istio-egressgateway.istio-system.svc.cluster.local"


def _cluster(mode: str) -> object:
    dr = f"""apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: to-gateway}}
spec:
  host: {GW}
  trafficPolicy: {{tls: {{mode: {mode}, sni: aliyun.com}}}}
"""
    snap = Snapshot.build(step_resources(4) + decode(dr, "dr.yaml"))
    config = translate(snap, sleep_proxy(snap))
    (cluster,) = [c for c in config.clusters if c.name == f"outbound|80||{GW}"]
    return cluster


def test_istio_mutual_is_plaintext_and_simple_is_tls() -> None:
    assert not _cluster("ISTIO_MUTUAL").HasField("transport_socket")  # type: ignore[attr-defined]
    assert _cluster("SIMPLE").HasField("transport_socket")  # type: ignore[attr-defined]
