"""Workload controllers: IstioGateway -> Deployment/Service, Deployment -> Pods."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

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


def _deployment(namespace: str, uid: str, replicas: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "sleep", "namespace": namespace, "uid": uid},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "sleep"}},
            "template": {
                "metadata": {"labels": {"app": "sleep"}},
                "spec": {"containers": [{"name": "sleep", "image": "curl"}]},
            },
        },
    }


def test_owned_by_is_by_namespace_and_uid() -> None:
    default, other = _deployment("default", "u-default"), _deployment("other", "u-other")
    (pod,) = wl.plan_pods(default, [], suffix=_counter()).create
    assert pod["metadata"]["ownerReferences"][0]["uid"] == "u-default"
    assert wl.owned_by(pod, default)
    # The same kind and name in another namespace owns nothing here...
    assert not wl.owned_by(pod, other)
    # ... nor does a pod that says so but lives elsewhere belong to it,
    moved = {**pod, "metadata": {**pod["metadata"], "namespace": "other"}}
    assert not wl.owned_by(moved, default) and not wl.owned_by(moved, other)
    # ... nor does a re-created Deployment (same namespace and name, another uid) own it.
    assert not wl.owned_by(pod, _deployment("default", "u-again"))
    # A reference without a uid names a stored owner no more.
    bare = {**pod["metadata"]["ownerReferences"][0], "uid": ""}
    legacy = {**pod, "metadata": {**pod["metadata"], "ownerReferences": [bare]}}
    assert not wl.owned_by(legacy, default)
    # Between objects never stored (offline analysis: no uids), kind and name decide.
    unstored = _deployment("default", "")
    assert wl.owned_by(wl.plan_pods(unstored, [], suffix=_counter()).create[0], unstored)


def test_same_named_deployments_plan_and_scale_independently() -> None:
    default, other = _deployment("default", "u-default"), _deployment("other", "u-other")
    (mine,) = wl.plan_pods(default, [], suffix=_counter()).create
    # other/sleep sees default's pod and still makes its own, even under the same name.
    (theirs,) = wl.plan_pods(other, [mine], suffix=_counter()).create
    assert theirs["metadata"]["namespace"] == "other"
    assert theirs["metadata"]["name"] == mine["metadata"]["name"]
    assert theirs["metadata"]["ownerReferences"][0]["uid"] == "u-other"
    pods = [_ready(mine), _ready(theirs)]
    # Scaling other/sleep to 0 deletes its pod only; default/sleep has nothing to do.
    assert wl.plan_pods(_deployment("other", "u-other", 0), pods).delete == [pods[1]]
    assert wl.plan_pods(default, pods) == wl.PodPlan()


def test_new_pod_names_are_unique_in_their_namespace() -> None:
    (mine,) = wl.plan_pods(_deployment("default", "u1"), [], suffix=lambda: "aaaaa").create
    (theirs,) = wl.plan_pods(_deployment("other", "u2"), [], suffix=lambda: "ccccc").create
    suffixes = iter(["aaaaa", "ccccc"])
    plan = wl.plan_pods(_deployment("default", "u1", 2), [mine, theirs], lambda: next(suffixes))
    # aaaaa is taken in default; ccccc only in other, so it may be used here.
    assert [p["metadata"]["name"].rsplit("-", 1)[1] for p in plan.create] == ["ccccc"]


def test_dangling_when_no_owner_with_the_uid_is_left() -> None:
    default, other = _deployment("default", "u-default"), _deployment("other", "u-other")
    (pod,) = wl.plan_pods(default, [], suffix=_counter()).create
    assert not wl.dangling(pod, {"u-default": default, "u-other": other})
    # default/sleep gone: other/sleep (same kind and name) keeps nothing alive.
    assert wl.dangling(pod, {"u-other": other})
    # Re-created under another uid: the old pods are the old owner's, so they go.
    assert wl.dangling(pod, {"u-again": _deployment("default", "u-again")})
    # The uid of another kind of object, or of an object in another namespace, is no owner.
    moved = {**default, "metadata": {**default["metadata"], "namespace": "other"}}
    assert wl.dangling(pod, {"u-default": moved})
    # No references: never collected. Several: kept while one owner is left.
    assert not wl.dangling({"metadata": {"name": "x", "namespace": "default"}}, {})
    two = wl.owner_ref(_deployment("default", "u-two"))
    both = {**pod, "metadata": {**pod["metadata"], "ownerReferences": [*_refs(pod), two]}}
    assert not wl.dangling(both, {"u-two": _deployment("default", "u-two")})


def _refs(obj: dict[str, Any]) -> list[dict[str, Any]]:
    refs: list[dict[str, Any]] = obj["metadata"]["ownerReferences"]
    return refs


def test_fill_owner_uids_from_the_owner_in_the_same_namespace() -> None:
    default, other = _deployment("default", "u-default"), _deployment("other", "u-other")
    pods = []
    for ns in ("default", "other", "gone"):
        (pod,) = wl.plan_pods(_deployment(ns, ""), [], suffix=_counter()).create
        pods.append(pod)
    cluster_owner = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x", "uid": "n"}}
    by_namespace = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "c",
            "namespace": "default",
            "ownerReferences": [{"apiVersion": "v1", "kind": "Namespace", "name": "x"}],
        },
    }
    stored = {**pods[0], "metadata": {**pods[0]["metadata"], "name": "kept"}}
    stored["metadata"]["ownerReferences"] = [wl.owner_ref(default)]
    fill = wl.fill_owner_uids([*pods, by_namespace, stored], [default, other, cluster_owner])
    assert [_refs(p)[0]["uid"] for p in fill.filled] == ["u-default", "u-other", "n"]
    assert [p["metadata"]["namespace"] for p in fill.filled] == ["default", "other", "default"]
    assert _refs(pods[0])[0]["uid"] == ""  # the input is not changed
    (line,) = fill.unresolved
    assert line.startswith(f"Pod gone/{pods[2]['metadata']['name']}: ")
    assert 'names Deployment "sleep" without a uid' in line and 'namespace "gone"' in line


def _pod(namespace: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "p", "namespace": namespace, "labels": {"app": "a"}}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": {}}


def test_a_namespace_labelled_out_of_injection_keeps_its_pods_out_of_the_mesh() -> None:
    objs = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n, "labels": labels}}
        for n, labels in (
            ("without-istio", {"istio-injection": "disabled"}),
            ("meshed", {"istio-injection": "enabled"}),
            ("plain", {"team": "x"}),
        )
    ]
    injection = wl.namespace_injection(objs)
    assert injection == {"without-istio": "disabled", "meshed": "enabled"}

    out = wl.inject_labels(_pod("without-istio"), injection.get("without-istio"))
    assert out["metadata"]["labels"] == {"app": "a", "sidecar.istio.io/inject": "false"}
    assert not wl.wants_sidecar(out)
    # Enabled, or no label at all (meshgate's default): a sidecar and Istio's tlsMode label.
    for ns in ("meshed", "plain"):
        out = wl.inject_labels(_pod(ns), injection.get(ns))
        assert wl.wants_sidecar(out)
        assert out["metadata"]["labels"]["security.istio.io/tlsMode"] == "istio"
    # The pod's own word wins over its namespace's, as in Istio's injector.
    asked = _pod("without-istio", {"sidecar.istio.io/inject": "true"})
    out = wl.inject_labels(asked, "disabled")
    assert wl.wants_sidecar(out) and "sidecar.istio.io/inject" not in out["metadata"]["labels"]


def test_deployment_pods_follow_their_namespace_injection_label() -> None:
    dep = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "sleep", "namespace": "without-istio", "uid": "d1"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "sleep"}},
            "template": {"metadata": {"labels": {"app": "sleep"}}, "spec": {}},
        },
    }
    (pod,) = wl.plan_pods(dep, [], suffix=_counter(), namespace_injection="disabled").create
    assert not wl.wants_sidecar(pod)
    (pod,) = wl.plan_pods(dep, [], suffix=_counter()).create
    assert wl.wants_sidecar(pod)
