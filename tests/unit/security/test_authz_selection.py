"""Which AuthorizationPolicies apply to a proxy: namespaces, root namespace, selector,
targetRefs (security.policies)."""

from __future__ import annotations

from tests.unit.security.rbackit import gateway, other_pod, policy, seed_with, sleep

from meshgate.model.proxy import Proxy
from meshgate.model.snapshot import Snapshot
from meshgate.security.policies import policies_for

ALLOW_ALL = "{rules: [{}]}"


def _names(snapshot: Snapshot, proxy: Proxy) -> list[str]:
    return [f"{ap.namespace}/{ap.name}" for ap in policies_for(snapshot, proxy)]


def test_no_policy_applies_without_policies() -> None:
    snap = seed_with()
    assert _names(snap, gateway(snap)) == []
    assert _names(snap, sleep(snap)) == []


def test_root_namespace_without_selector_is_mesh_wide() -> None:
    snap = seed_with(policy("mesh", "istio-system", ALLOW_ALL))
    assert _names(snap, gateway(snap)) == ["istio-system/mesh"]
    assert _names(snap, sleep(snap)) == ["istio-system/mesh"]


def test_namespace_policy_without_selector_covers_only_its_namespace() -> None:
    snap = seed_with(policy("ns", "default", ALLOW_ALL), policy("elsewhere", "shop", ALLOW_ALL))
    assert _names(snap, sleep(snap)) == ["default/ns"]
    assert _names(snap, gateway(snap)) == []


def test_selector_must_be_a_subset_of_the_pod_labels() -> None:
    snap = seed_with(
        policy("gw", "istio-system", "{selector: {matchLabels: {istio: egressgateway}}}"),
        policy("both", "istio-system", "{selector: {matchLabels: {istio: egressgateway, x: y}}}"),
        policy("sleepy", "istio-system", "{selector: {matchLabels: {app: sleep}}}"),
        policy("local", "default", "{selector: {matchLabels: {app: sleep}}}"),
        policy("other-ns", "shop", "{selector: {matchLabels: {app: sleep}}}"),
    )
    assert _names(snap, gateway(snap)) == ["istio-system/gw"]
    # A root-namespace selector reaches pods in every namespace.
    assert _names(snap, sleep(snap)) == ["default/local", "istio-system/sleepy"]


def test_mesh_config_moves_the_root_namespace() -> None:
    mesh = """---
apiVersion: meshgate.io/v1alpha1
kind: MeshConfig
metadata: {name: default}
spec: {rootNamespace: mesh-root}
"""
    snap = seed_with(
        mesh, policy("wide", "mesh-root", ALLOW_ALL), policy("old", "istio-system", ALLOW_ALL)
    )
    assert _names(snap, sleep(snap)) == ["mesh-root/wide"]
    # istio-system is only the gateway's own namespace now.
    assert _names(snap, gateway(snap)) == ["istio-system/old", "mesh-root/wide"]


def test_target_ref_to_the_gateway_service() -> None:
    refs = "{targetRefs: [{kind: Service, name: istio-egressgateway}]}"
    snap = seed_with(
        policy("by-service", "istio-system", refs),
        policy("single", "istio-system", "{targetRef: {kind: Service, name: istio-egressgateway}}"),
        policy(
            "core",
            "istio-system",
            "{targetRefs: [{group: '', kind: Service, name: istio-egressgateway}]}",
        ),
        policy("wrong-name", "istio-system", "{targetRefs: [{kind: Service, name: sleep}]}"),
        # The policy's own namespace only: the sleep Service's namespace is not the gateway's.
        policy("wrong-ns", "default", refs),
    )
    assert _names(snap, gateway(snap)) == [
        "istio-system/by-service",
        "istio-system/core",
        "istio-system/single",
    ]


def test_target_refs_never_apply_to_sidecars() -> None:
    snap = seed_with(
        policy("svc", "default", "{targetRefs: [{kind: Service, name: sleep}]}"),
        policy("root", "istio-system", "{targetRefs: [{kind: Service, name: sleep}]}"),
    )
    assert _names(snap, sleep(snap)) == []


def test_target_ref_to_a_gateway_api_gateway_by_its_label() -> None:
    labelled = other_pod(
        "gw-api-1",
        "istio-system",
        "10.34.0.9",
        {"gateway.networking.k8s.io/gateway-name": "edge", "istio": "egressgateway"},
    )
    ref = "{targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: %s}]}"
    snap = seed_with(
        policy("edge", "istio-system", ref % "edge"),
        policy("other", "istio-system", ref % "other"),
        extra=[labelled],
    )
    edge = Proxy("router", "10.34.0.9", "gw-api-1", "istio-system", labelled.labels)
    assert _names(snap, edge) == ["istio-system/edge"]
    # The seed's gateway has no gateway-name label: a Gateway target never names it.
    assert _names(snap, gateway(snap)) == []
