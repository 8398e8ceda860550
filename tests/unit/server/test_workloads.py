"""Workload controllers: IstioGateway -> Deployment/Service, Deployment -> Pods."""

from __future__ import annotations

import itertools
from collections.abc import Callable

from meshgate.server import workloads as wl

GATEWAY = {
    "apiVersion": "istio.alibabacloud.com/v1beta1",
    "kind": "IstioGateway",
    "metadata": {"name": "istio-egressgateway", "namespace": "istio-system", "uid": "u1"},
    "spec": {
        "gatewayType": "egress",
        "replicaCount": 2,
        "podLabels": {"team": "net"},
        "ports": [{"name": "http-0", "port": 80, "protocol": "TCP", "targetPort": 80}],
    },
}


def _counter() -> Callable[[], str]:
    it = itertools.count()
    return lambda: f"x{next(it):04d}"


def test_gateway_objects_labels_and_ports() -> None:
    dep, svc, sa = wl.gateway_objects(GATEWAY)
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert labels == {"app": "istio-egressgateway", "istio": "egressgateway", "team": "net"}
    assert dep["spec"]["replicas"] == 2
    assert dep["metadata"]["namespace"] == "istio-system"
    assert dep["spec"]["template"]["spec"]["containers"][0]["name"] == "istio-proxy"
    assert svc["spec"]["ports"] == [
        {"name": "http-0", "port": 80, "protocol": "TCP", "targetPort": 80}
    ]
    assert svc["spec"]["selector"] == {"app": "istio-egressgateway", "istio": "egressgateway"}
    assert sa["kind"] == "ServiceAccount"
    for obj in (dep, svc, sa):
        assert obj["metadata"]["ownerReferences"][0]["name"] == "istio-egressgateway"


def test_plan_pods_creates_replicas_with_generated_names() -> None:
    dep, _, _ = wl.gateway_objects(GATEWAY)
    plan = wl.plan_pods(dep, [], suffix=_counter())
    assert len(plan.create) == 2 and not plan.delete
    names = [p["metadata"]["name"] for p in plan.create]
    thash = wl.template_hash(dep)
    assert names == [f"istio-egressgateway-{thash}-x0000", f"istio-egressgateway-{thash}-x0001"]
    pod = plan.create[0]
    assert pod["metadata"]["labels"]["pod-template-hash"] == thash
    assert wl.is_router(pod) and not wl.wants_sidecar(pod)


def test_plan_pods_is_stable_and_replaces_stale_pods() -> None:
    dep, _, _ = wl.gateway_objects(GATEWAY)
    first = wl.plan_pods(dep, [], suffix=_counter()).create
    assert wl.plan_pods(dep, first).create == []
    changed = {**dep, "spec": {**dep["spec"], "replicas": 1}}
    plan = wl.plan_pods(changed, first)
    assert len(plan.delete) == 1 and not plan.create
    changed["spec"]["template"] = {**dep["spec"]["template"], "metadata": {"labels": {"a": "b"}}}
    plan = wl.plan_pods(changed, first, suffix=_counter())
    assert len(plan.delete) == 2 and len(plan.create) == 1


def test_plan_pods_ignores_pods_it_does_not_own() -> None:
    dep, _, _ = wl.gateway_objects(GATEWAY)
    stranger = {"kind": "Pod", "metadata": {"name": "other", "labels": {"app": "x"}}}
    plan = wl.plan_pods(dep, [stranger], suffix=_counter())
    assert stranger not in plan.delete


def test_sidecar_injection_opt_out() -> None:
    pod = {"metadata": {"name": "p", "annotations": {"sidecar.istio.io/inject": "false"}}}
    assert not wl.wants_sidecar(pod)
    assert wl.wants_sidecar({"metadata": {"name": "p"}})
