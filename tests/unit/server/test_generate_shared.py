"""The control plane's ``generate`` with shared translations: each proxy gets exactly the
bytes of its own translation, its own access-log credential and its own identity secrets,
while replicas are translated once (plus once to verify)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.golden.seedworld import SLEEP_IP, SLEEP_POD, pod, step_resources

from meshgate.model.snapshot import Snapshot
from meshgate.security import proxy_credentials, sds
from meshgate.server.app import ControlPlane
from meshgate.telemetry import als
from meshgate.translate import translate
from meshgate.translate.output import ProxyConfig
from meshgate.translate.secrets import referenced

REPLICAS = [(f"sleep-6f8cb8f5d4-r{k}abc", f"10.34.1.{1 + k}") for k in range(4)]
EXTRA = """apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
---
apiVersion: meshgate.io/v1alpha1
kind: MeshConfig
metadata: {name: default}
spec:
  accessLogFile: /dev/stdout
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
"""


@pytest.fixture
def control_plane(tmp_path: Path) -> Iterator[ControlPlane]:
    cp = ControlPlane(tmp_path / "home", None)
    try:
        yield cp
    finally:
        cp.store.close()


def _node(name: str, ip: str) -> str:
    return f"sidecar~{ip}~{name}.default~default.svc.cluster.local"


def _bytes(config: ProxyConfig) -> list[list[bytes]]:
    return [
        [m.SerializeToString(deterministic=True) for m in items]
        for items in config.by_type().values()
    ]


def _alone(cp: ControlPlane, snap: Snapshot, node: str) -> ProxyConfig:
    """What generate made before translations were shared."""
    proxy = snap.proxy_for(node)
    assert proxy is not None
    config = translate(snap, proxy)
    credential = proxy_credentials.credential(cp._credential_key, node)
    als.authenticate_loggers(config, proxy_credentials.HEADER, credential)
    wanted = referenced(config.clusters, config.listeners)
    identity = sds.identity_secrets(cp.ca, proxy, snap.mesh.trust_domain, wanted)
    return dataclasses.replace(config, secrets=[*config.secrets, *identity])


@pytest.mark.parametrize("step", [3, 4])
def test_replicas_get_their_own_bytes_from_one_translation(
    control_plane: ControlPlane, step: int
) -> None:
    from tests.golden.seedworld import decode

    # The walkthrough's MeshConfig replaced by one that also logs (so ALS is configured).
    resources = [r for r in step_resources(step) if r.kind != "MeshConfig"] + decode(EXTRA)
    resources += [
        pod(n, "default", ip, {"app": "sleep"}, service_account="sleep") for n, ip in REPLICAS
    ]
    snap = Snapshot.build(resources)
    control_plane.reconciler.snapshot = snap
    nodes = [_node(n, ip) for n, ip in [(SLEEP_POD, SLEEP_IP), *REPLICAS]]
    configs = {}
    for node in nodes:
        config = control_plane.generate(node, {})
        assert config is not None
        assert _bytes(config) == _bytes(_alone(control_plane, snap, node)), node
        configs[node] = config
    assert control_plane.translations == 2  # the template, and one to verify the sharing
    # Each one's access-log credential is its own (and ISTIO_MUTUAL brings its identity).
    for node, config in configs.items():
        credential = proxy_credentials.credential(control_plane._credential_key, node).encode()
        listeners = b"".join(m.SerializeToString() for m in config.listeners)
        assert credential in listeners
        assert {s.name for s in config.secrets} >= {"default", "ROOTCA"}
    # Asked again for the same snapshot (a push for certificates): nothing translated.
    for node in nodes:
        again = control_plane.generate(node, {})
        assert again is not None and _bytes(again) == _bytes(configs[node])
    assert control_plane.translations == 2
