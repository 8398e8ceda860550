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


def _ready(pod: dict[str, object], ready: bool = True) -> dict[str, object]:
    containers = [{"name": "c", "ready": ready, "state": {"running": {}}}]
    return {**pod, "status": {"phase": "Running", "containerStatuses": containers}}


def _with(dep: dict[str, object], **spec: object) -> dict[str, object]:
    return {**dep, "spec": {**dep["spec"], **spec}}  # type: ignore[dict-item]


def _retemplate(dep: dict[str, object]) -> dict[str, object]:
    template = dep["spec"]["template"]  # type: ignore[index]
    return _with(dep, template={**template, "metadata": {"labels": {"a": "b"}}})


def test_plan_pods_is_stable_and_scales_down_not_ready_first() -> None:
    dep, _, _ = wl.gateway_objects(GATEWAY)
    first = wl.plan_pods(dep, [], suffix=_counter()).create
    assert wl.plan_pods(dep, first).create == []
    pods = [first[0], _ready(first[1])]
    plan = wl.plan_pods(_with(dep, replicas=1), pods)
    assert plan.delete == [first[0]] and not plan.create


def test_rolling_limits_as_kubernetes_rounds_them() -> None:
    dep, _, _ = wl.gateway_objects(GATEWAY)
    assert wl.rolling_limits(_with(dep, replicas=1)) == (1, 0)
    assert wl.rolling_limits(_with(dep, replicas=4)) == (1, 1)
    assert wl.rolling_limits(_with(dep, replicas=10)) == (3, 2)
    custom = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "50%"}}
    assert wl.rolling_limits(_with(dep, replicas=3, strategy=custom)) == (0, 1)
    zero = {"rollingUpdate": {"maxSurge": "0%", "maxUnavailable": 0}}
    assert wl.rolling_limits(_with(dep, replicas=5, strategy=zero)) == (0, 1)


def test_rolling_update_keeps_the_old_pod_until_the_new_one_is_ready() -> None:
    dep, _, _ = wl.gateway_objects(GATEWAY)
    dep = _with(dep, replicas=1)
    (old,) = [_ready(p) for p in wl.plan_pods(dep, [], suffix=_counter()).create]
    changed = _retemplate(dep)
    plan = wl.plan_pods(changed, [old], suffix=_counter())
    assert plan.delete == [] and len(plan.create) == 1  # surge 1, unavailable 0
    (new,) = plan.create
    assert new["metadata"]["labels"]["pod-template-hash"] == wl.template_hash(changed)
    # The new pod exists but is not Ready: nothing more to do.
    waiting = wl.plan_pods(changed, [old, _ready(new, False)])
    assert waiting.create == [] and waiting.delete == []
    # Once it is Ready, the old one goes.
    done = wl.plan_pods(changed, [old, _ready(new)])
    assert done.create == [] and done.delete == [old]
    assert wl.plan_pods(changed, [_ready(new)]) == wl.PodPlan()


def test_rolling_update_of_four_replicas_steps_by_one() -> None:
    dep, _, _ = wl.gateway_objects(GATEWAY)
    dep = _with(dep, replicas=4)  # surge 1, unavailable 1
    olds = [_ready(p) for p in wl.plan_pods(dep, [], suffix=_counter()).create]
    changed = _retemplate(dep)
    plan = wl.plan_pods(changed, olds, suffix=_counter())
    assert len(plan.create) == 1 and len(plan.delete) == 1  # 5 pods at most, 3 Ready at least
    # Old pods that are not Ready go first: 5 pods - 3 to keep Ready - 1 new not Ready = 1,
    # and no Ready one may go while only 2 are Ready.
    broken = [*olds[:2], *[_ready(p, False) for p in olds[2:]]]
    plan = wl.plan_pods(changed, broken, suffix=_counter())
    assert len(plan.create) == 1 and plan.delete == [broken[2]]


def test_recreate_deletes_old_pods_before_creating_new_ones() -> None:
    dep, _, _ = wl.gateway_objects(GATEWAY)
    dep = _with(dep, replicas=2, strategy={"type": "Recreate"})
    olds = [_ready(p) for p in wl.plan_pods(dep, [], suffix=_counter()).create]
    changed = _retemplate(dep)
    plan = wl.plan_pods(changed, olds, suffix=_counter())
    assert plan.create == [] and plan.delete == olds
    assert len(wl.plan_pods(changed, [], suffix=_counter()).create) == 2


def test_plan_pods_ignores_pods_it_does_not_own() -> None:
    dep, _, _ = wl.gateway_objects(GATEWAY)
    stranger = {"kind": "Pod", "metadata": {"name": "other", "labels": {"app": "x"}}}
    plan = wl.plan_pods(dep, [stranger], suffix=_counter())
    assert stranger not in plan.delete


def test_sidecar_injection_opt_out() -> None:
    pod = {"metadata": {"name": "p", "annotations": {"sidecar.istio.io/inject": "false"}}}
    assert not wl.wants_sidecar(pod)
    assert wl.wants_sidecar({"metadata": {"name": "p"}})
