"""Shared translations (translate.cache) give every proxy exactly the bytes of its own
translation: over the seed's steps, the golden fixtures, the Kubernetes-services world (a
headless service whose pods see each other), a Sidecar that selects some pods only, and a
config that names the template's own pod."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.golden.kubeworld import STATEFUL, kube_resources, kube_snapshot
from tests.golden.seedworld import (
    SLEEP_IP,
    SLEEP_POD,
    decode,
    gateway_proxy,
    pod,
    sleep_proxy,
    step_resources,
)
from tests.golden.test_golden import render
from tests.golden.test_golden_authz import POLICIES

from meshgate.model.proxy import Proxy
from meshgate.model.snapshot import Snapshot
from meshgate.translate import translate
from meshgate.translate.cache import SharedTranslations
from meshgate.translate.output import ProxyConfig

GOLDEN = Path(__file__).resolve().parents[2] / "golden"
# Replicas of the sleep Deployment: same labels and service account, names and IPs of its
# lengths (the metadata-exchange headers carry both).
REPLICAS = [(f"sleep-6f8cb8f5d4-r{k}abc", f"10.34.1.{1 + k}") for k in range(4)]


def _replicas(resources: list[Any], phase: str = "Running") -> list[Any]:
    extra = [
        pod(name, "default", ip, {"app": "sleep"}, service_account="sleep", phase=phase)
        for name, ip in REPLICAS
    ]
    return resources + extra


def _proxy(snap: Snapshot, name: str, ip: str, namespace: str = "default") -> Proxy:
    proxy = snap.proxy_for(f"sidecar~{ip}~{name}.{namespace}~{namespace}.svc.cluster.local")
    assert proxy is not None
    return proxy


def _bytes(config: ProxyConfig) -> list[list[bytes]]:
    return [
        [m.SerializeToString(deterministic=True) for m in items]
        for items in config.by_type().values()
    ]


def _all_proxies(snap: Snapshot) -> list[Proxy]:
    out = []
    for (ns, name), p in sorted(snap.pods.items()):
        kind = "router" if p.annotations.get("meshgate.io/proxy-type") == "router" else "sidecar"
        proxy = snap.proxy_for(f"{kind}~{p.ip}~{name}.{ns}~{ns}.svc.cluster.local")
        assert proxy is not None
        out.append(proxy)
    return out


def _check_all(snap: Snapshot) -> SharedTranslations:
    """Every proxy of the snapshot, shared and alone: the same bytes."""
    shared = SharedTranslations()
    proxies = _all_proxies(snap)
    for proxy in proxies:
        assert _bytes(shared.config(snap, proxy)) == _bytes(translate(snap, proxy)), proxy.pod
    return shared


@pytest.mark.parametrize("step", [1, 2, 3, 4])
def test_seed_steps_with_replicas_are_shared_and_identical(step: int) -> None:
    snap = Snapshot.build(_replicas(step_resources(step)))
    shared = _check_all(snap)
    # Five sleep pods: one template, one translated again (to verify) and four derived.
    assert shared.derivations == 4
    assert shared.translations == 2 + (1 if step == 4 else 0)  # + the gateway, alone


@pytest.mark.parametrize("step", [1, 2, 3, 4])
def test_golden_fixtures_through_the_cache_render_their_golden_files(step: int) -> None:
    snap = Snapshot.build(step_resources(step))
    shared = SharedTranslations()
    sleep = render(shared.config(snap, sleep_proxy(snap)))
    assert sleep == (GOLDEN / f"step{step}-sidecar.json").read_text()
    if step == 4:
        gateway = render(shared.config(snap, gateway_proxy(snap)))
        assert gateway == (GOLDEN / "step4-gateway.json").read_text()
    assert shared.translations == (2 if step == 4 else 1)


def test_golden_kube_fixture_through_the_cache() -> None:
    snap = kube_snapshot()
    rendered = render(SharedTranslations().config(snap, sleep_proxy(snap)))
    assert rendered == (GOLDEN / "kube-services-sidecar.json").read_text()


def test_authorization_policies_with_replicas_are_shared_and_identical() -> None:
    snap = Snapshot.build(_replicas(step_resources(4) + decode(POLICIES, "policies.yaml")))
    assert _check_all(snap).derivations == 4


def test_kube_world_headless_pods_are_not_shared() -> None:
    """stateful-0 and stateful-1 are endpoints of a headless service: each binds the
    other's address, not its own, so their configs differ and are translated alone."""
    snap = Snapshot.build(_replicas(kube_resources()))
    shared = _check_all(snap)
    stateful = [_proxy(snap, name, ip) for name, ip in STATEFUL]
    assert _bytes(shared.config(snap, stateful[0])) != _bytes(shared.config(snap, stateful[1]))
    assert shared.derivations == 4  # the sleep pods only


def test_sidecar_selecting_some_pods_splits_the_group() -> None:
    scope = """apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: narrow, namespace: default}
spec:
  workloadSelector: {labels: {tier: narrow}}
  egress: [{hosts: ["istio-system/*"]}]
"""
    resources = step_resources(4) + decode(scope)
    resources += [
        pod(name, "default", ip, {"app": "sleep", "tier": "narrow"}, service_account="sleep")
        for name, ip in REPLICAS[:2]
    ]
    resources += [
        pod(name, "default", ip, {"app": "sleep"}, service_account="sleep")
        for name, ip in REPLICAS[2:]
    ]
    snap = Snapshot.build(resources)
    shared = _check_all(snap)
    narrow = _proxy(snap, *REPLICAS[0])
    wide = _proxy(snap, *REPLICAS[2])
    assert len(shared.config(snap, narrow).clusters) < len(shared.config(snap, wide).clusters)
    assert shared.derivations == 3  # all but each group's template


def test_config_naming_the_template_pod_is_not_shared() -> None:
    """A route whose reply names the template pod the way refusals do: substituting would
    change the user's text, so the group is translated one by one, still identical."""
    first = REPLICAS[0][0]
    vs = f"""apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: tease, namespace: default}}
spec:
  hosts: [tease.example.com]
  http:
  - directResponse:
      status: 503
      body: {{string: "REGISTRY_ONLY (from default/{first})"}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: tease, namespace: default}}
spec:
  hosts: [tease.example.com]
  location: MESH_EXTERNAL
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  resolution: DNS
"""
    snap = Snapshot.build(_replicas(step_resources(3)) + decode(vs))
    shared = SharedTranslations()
    for name, ip in [*REPLICAS, (SLEEP_POD, SLEEP_IP)]:
        proxy = _proxy(snap, name, ip)
        assert _bytes(shared.config(snap, proxy)) == _bytes(translate(snap, proxy)), name
    assert shared.derivations == 0
    assert shared.translations == 5
    assert shared.unshared_groups == 1


def test_a_new_snapshot_starts_afresh() -> None:
    shared = SharedTranslations()
    one = Snapshot.build(_replicas(step_resources(2)))
    two = Snapshot.build(_replicas(step_resources(3)))
    for snap in (one, two):
        for name, ip in REPLICAS:
            proxy = _proxy(snap, name, ip)
            assert _bytes(shared.config(snap, proxy)) == _bytes(translate(snap, proxy))
    assert shared.translations == 4 and shared.derivations == 6


def _static_se(address: str) -> list[Any]:
    return decode(f"""apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: moving, namespace: default}}
spec:
  hosts: [moving.example.com]
  location: MESH_EXTERNAL
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  resolution: STATIC
  endpoints: [{{address: {address}}}]
""")


def test_a_verification_carries_over_while_the_personal_resources_stay_the_same() -> None:
    """A next snapshot that changes an endpoint only: one translation for the group (the
    template's), every proxy still byte-identical to its own translation. A change that
    puts the template pod's name in a route is verified again, and found unshareable."""
    shared = SharedTranslations()
    base = _replicas(step_resources(3))
    for k, extra in enumerate(([], [])):
        snap = Snapshot.build(base + _static_se(f"198.51.100.{7 + k}") + extra)
        before = shared.translations
        for name, ip in REPLICAS:
            proxy = _proxy(snap, name, ip)
            assert _bytes(shared.config(snap, proxy)) == _bytes(translate(snap, proxy))
        assert shared.translations - before == (2 if k == 0 else 1)
    first = REPLICAS[0][0]
    tease = decode(f"""apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: tease, namespace: default}}
spec:
  hosts: [moving.example.com]
  http:
  - directResponse:
      status: 503
      body: {{string: "REGISTRY_ONLY (from default/{first})"}}
""")
    snap = Snapshot.build(base + _static_se("198.51.100.9") + tease)
    for name, ip in REPLICAS:
        proxy = _proxy(snap, name, ip)
        assert _bytes(shared.config(snap, proxy)) == _bytes(translate(snap, proxy)), name
    assert shared.unshared_groups == 1


def test_packed_for_xds_as_the_per_proxy_translation_is() -> None:
    """What the xDS server sends (one packer for a whole push, the shared bytes reused):
    the same Any messages, names and versions as packing each proxy's own translation."""
    from meshgate.xds.resources import Packer

    snap = Snapshot.build(_replicas(step_resources(4)))
    shared, push = SharedTranslations(), Packer()
    for proxy in _all_proxies(snap):
        got = push.pack_config(shared.config(snap, proxy))
        want = Packer().pack_config(translate(snap, proxy))
        for url, named in want.by_type.items():
            assert [(n, a.SerializeToString()) for n, a in got.by_type[url]] == [
                (n, a.SerializeToString()) for n, a in named
            ], (proxy.pod, url)
            assert got.versions_of(url) == want.versions_of(url)
    assert shared.derivations == 4
