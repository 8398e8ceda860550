"""Workload controllers as pure functions: what objects should exist, given what does.

Rules:
- Inputs and outputs are canonical wire dicts (what the store holds); no I/O here, and
  randomness only through the ``suffix`` callable, so tests can pin names.
- An ``IstioGateway`` owns a Deployment and a Service of its own name in its namespace:
  pods labelled ``app: <name>`` and ``istio: <name without a leading "istio-">`` plus
  ``podLabels``, annotated as routers, with the proxy container ``istio-proxy``; its
  ``nodeSelector`` is the pods' (the gateway chart's), so it places them on nodes.
- A Deployment owns ``replicas`` pods named ``<deployment>-<template hash>-<5 chars>``,
  labelled with the template's labels and ``pod-template-hash``. Pods whose hash is stale
  are replaced per ``spec.strategy``: ``RollingUpdate`` (the default) creates new pods up to
  ``replicas + maxSurge`` and deletes old ones only while ``replicas - maxUnavailable`` pods
  stay Ready (percentages of ``replicas``: surge rounded up, unavailable down, both 25 % by
  default; both 0 means unavailable 1, as Kubernetes resolves them); ``Recreate`` deletes
  every old pod and creates new ones once none is left. Among pods to delete, those not
  Ready go first.
- An object's identity is its namespace and name; ownership is by uid, as in Kubernetes.
  Objects a controller creates carry an ownerReference with the owner's uid, and only
  those are its own: a dependent is in its owner's namespace (ownerReferences are
  namespace-local, a cluster-scoped owner excepted), and a reference names the owner's
  group, kind, name and uid. A reference without a uid matches only an owner without one
  (objects never stored: offline analysis); stored references all carry one (admission
  and ``fill_owner_uids`` give one to hand-written ones and those of older state).
- Pod names are unique within their namespace; the same name may live in another.
- Sidecar injection is decided once, when a pod is admitted, as Istio's webhook decides it:
  the pod's own ``sidecar.istio.io/inject`` annotation or label, else its namespace's
  ``istio-injection`` label (only ``enabled`` injects), else meshgate's default (inject).
  A pod its namespace keeps out of the mesh is labelled ``sidecar.istio.io/inject: "false"``
  so every later reader (runtime, ``describe``, ``analyze``) sees the same decision, and a
  later change of the namespace's label leaves running pods as they are (as in Istio).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from meshgate.model.proxy import TLS_MODE_ISTIO, TLS_MODE_LABEL

ROUTER_ANNOTATION = "meshgate.io/proxy-type"
INJECT_ANNOTATION = "sidecar.istio.io/inject"
NAMESPACE_INJECTION_LABEL = "istio-injection"
PROXY_CONTAINER = "istio-proxy"
PROXY_IMAGE = "meshgate/proxyv2:envoy-1.40"
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

Obj = dict[str, Any]


def random_suffix(n: int = 5) -> str:
    return "".join(secrets.choice(_NAME_ALPHABET) for _ in range(n))


def _meta(obj: Obj) -> Obj:
    meta: Obj = obj.get("metadata") or {}
    return meta


def _group(api_version: Any) -> str:
    api = str(api_version or "")
    return api.rsplit("/", 1)[0] if "/" in api else ""


def key_of(obj: Obj) -> tuple[str, str, str, str]:
    meta = _meta(obj)
    return (
        _group(obj.get("apiVersion")),
        obj.get("kind", ""),
        meta.get("namespace", "") or "",
        meta.get("name", ""),
    )


def owner_ref(owner: Obj) -> Obj:
    meta = _meta(owner)
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta.get("name", ""),
        "uid": meta.get("uid", ""),
        "controller": True,
    }


def namespace_of(obj: Obj) -> str:
    return str(_meta(obj).get("namespace") or "")


def uid_of(obj: Obj) -> str:
    return str(_meta(obj).get("uid") or "")


def refers_to(ref: Obj, owner: Obj) -> bool:
    """Whether the ownerReference ``ref`` names ``owner``: its group, kind, name and uid."""
    return (
        ref.get("kind") == owner.get("kind")
        and _group(ref.get("apiVersion")) == _group(owner.get("apiVersion"))
        and ref.get("name") == _meta(owner).get("name")
        and str(ref.get("uid") or "") == uid_of(owner)
    )


def owned_by(obj: Obj, owner: Obj) -> bool:
    """Whether ``owner`` owns ``obj``: same namespace (or a cluster-scoped owner), and an
    ownerReference of ``obj`` naming the owner and its uid. A same-named owner in
    another namespace, or a deleted and re-created one (another uid), owns nothing."""
    owner_ns = namespace_of(owner)
    if owner_ns and owner_ns != namespace_of(obj):
        return False
    return any(refers_to(ref, owner) for ref in _meta(obj).get("ownerReferences") or [])


OwnerIndex = dict[tuple[str, str, str, str], Obj]


def owner_index(objects: Iterable[Obj]) -> OwnerIndex:
    """(namespace, group, kind, name) -> object: owners by what a reference names."""
    return {(namespace_of(o), *key_of(o)[:2], str(_meta(o).get("name", ""))): o for o in objects}


def owner_of(ref: Obj, dependent: Obj, index: OwnerIndex) -> Obj | None:
    """The object ``ref`` (an ownerReference of ``dependent``) names, by group, kind and
    name: in the dependent's namespace, else cluster-scoped, as Kubernetes resolves owners."""
    group, kind, name = _group(ref.get("apiVersion")), str(ref.get("kind", "")), ref.get("name")
    for ns in dict.fromkeys((namespace_of(dependent), "")):
        found = index.get((ns, group, kind, str(name or "")))
        if found is not None:
            return found
    return None


def dangling(dependent: Obj, uids: dict[str, Obj]) -> bool:
    """Whether every owner ``dependent`` names is gone (so the garbage collector deletes
    it, as Kubernetes' does): no object has the reference's uid with its kind and name in
    the dependent's namespace or cluster scope. ``uids`` maps uid -> stored object."""
    refs = _meta(dependent).get("ownerReferences") or []
    if not refs:
        return False
    for ref in refs:
        owner = uids.get(str(ref.get("uid") or ""))
        if (
            owner is not None
            and refers_to(ref, owner)
            and namespace_of(owner) in ("", namespace_of(dependent))
        ):
            return False
    return True


@dataclass
class OwnerFill:
    """What ``fill_owner_uids`` did: objects given owner uids, and references it could
    not resolve (each a sentence naming the dependent and the missing owner)."""

    filled: list[Obj] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)


def fill_owner_uids(objects: list[Obj], owners: Iterable[Obj]) -> OwnerFill:
    """``objects`` whose ownerReferences lack a uid, with the uid of the owner their kind
    and name resolve to (see ``owner_of``) filled in: new dicts, only those changed.

    State directories from before ownership was by uid may hold such references; so may a
    hand-written manifest. A reference whose owner does not exist is left as it is and
    reported (the garbage collector then deletes the dependent, its owner being gone)."""
    index = owner_index(owners)
    out = OwnerFill()
    for obj in objects:
        refs = _meta(obj).get("ownerReferences") or []
        if all(ref.get("uid") for ref in refs):
            continue
        fixed: list[Obj] = []
        for i, ref in enumerate(refs):
            if ref.get("uid"):
                fixed.append(ref)
                continue
            owner = owner_of(ref, obj, index)
            if owner is None or not uid_of(owner):
                ns = namespace_of(obj)
                where = f'namespace "{ns}"' if ns else "the cluster scope"
                out.unresolved.append(
                    f"{obj.get('kind')} {ns + '/' if ns else ''}{_meta(obj).get('name')}: "
                    f"metadata.ownerReferences[{i}] names {ref.get('kind')} "
                    f'"{ref.get("name")}" without a uid, and there is none in {where}'
                )
                fixed.append(ref)
                continue
            fixed.append({**ref, "uid": uid_of(owner)})
        if fixed != refs:
            out.filled.append({**obj, "metadata": {**_meta(obj), "ownerReferences": fixed}})
    return out


def gateway_labels(gw: Obj) -> dict[str, str]:
    name: str = _meta(gw)["name"]
    istio = name[len("istio-") :] if name.startswith("istio-") else name
    labels = {"app": name, "istio": istio}
    labels.update((gw.get("spec") or {}).get("podLabels") or {})
    return labels


def _gateway_volumes(pod_spec: Obj, spec: Obj) -> None:
    """``secretVolumes``/``configVolumes`` as Istio's gateway chart renders them: optional
    volumes, mounted read-only on the proxy container (a config volume only with a
    ``mountPath``). Nothing is added when there are none."""
    volumes, mounts = [], []
    for v in spec.get("secretVolumes") or []:
        volumes.append(
            {"name": v.get("name"), "secret": {"secretName": v.get("secretName"), "optional": True}}
        )
        mounts.append({"name": v.get("name"), "mountPath": v.get("mountPath"), "readOnly": True})
    for v in spec.get("configVolumes") or []:
        volumes.append(
            {"name": v.get("name"), "configMap": {"name": v.get("configMapName"), "optional": True}}
        )
        if v.get("mountPath"):
            mounts.append(
                {"name": v.get("name"), "mountPath": v.get("mountPath"), "readOnly": True}
            )
    if volumes:
        pod_spec["volumes"] = volumes
    if mounts:
        pod_spec["containers"][0]["volumeMounts"] = mounts


def gateway_objects(gw: Obj) -> list[Obj]:
    """The Deployment and Service an ``IstioGateway`` stands for."""
    spec = gw.get("spec") or {}
    meta = _meta(gw)
    name = meta["name"]
    namespace = meta.get("namespace") or "istio-system"
    labels = gateway_labels(gw)
    ports = []
    container_ports = []
    for p in spec.get("ports") or []:
        port: Obj = {
            "name": p.get("name", ""),
            "port": p["port"],
            "protocol": p.get("protocol", "TCP"),
        }
        port["targetPort"] = p.get("targetPort", p["port"])
        ports.append(port)
        if isinstance(port["targetPort"], int):
            container_ports.append({"containerPort": port["targetPort"], "protocol": "TCP"})
    ref = owner_ref(gw)
    deployment: Obj = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": dict(labels),
            "ownerReferences": [ref],
        },
        "spec": {
            "replicas": int(spec.get("replicaCount", 1)),
            "selector": {"matchLabels": {"app": labels["app"], "istio": labels["istio"]}},
            "template": {
                "metadata": {
                    "labels": dict(labels),
                    "annotations": {ROUTER_ANNOTATION: "router", INJECT_ANNOTATION: "false"},
                },
                "spec": {
                    "serviceAccountName": f"{name}-service-account",
                    "containers": [
                        {"name": PROXY_CONTAINER, "image": PROXY_IMAGE, "ports": container_ports}
                    ],
                },
            },
        },
    }
    _gateway_volumes(deployment["spec"]["template"]["spec"], spec)
    if spec.get("nodeSelector"):
        deployment["spec"]["template"]["spec"]["nodeSelector"] = dict(spec["nodeSelector"])
    service: Obj = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": dict(labels),
            "ownerReferences": [ref],
        },
        "spec": {
            "type": spec.get("serviceType", "ClusterIP"),
            "selector": {"app": labels["app"], "istio": labels["istio"]},
            "ports": ports,
        },
    }
    account: Obj = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {
            "name": f"{name}-service-account",
            "namespace": namespace,
            "ownerReferences": [ref],
        },
    }
    return [deployment, service, account]


def template_hash(deployment: Obj) -> str:
    template = (deployment.get("spec") or {}).get("template") or {}
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()
    # Kubernetes' pod-template-hash is a short lowercase alphanumeric string.
    return "".join(_NAME_ALPHABET[int(digest[i : i + 2], 16) % 27] for i in range(0, 20, 2))


@dataclass
class PodPlan:
    create: list[Obj] = field(default_factory=list)
    delete: list[Obj] = field(default_factory=list)


def pod_ready(pod: Obj) -> bool:
    """Kubernetes' Ready: Running with every container ready."""
    status = pod.get("status") or {}
    containers = status.get("containerStatuses") or []
    return (
        status.get("phase") == "Running"
        and bool(containers)
        and all(c.get("ready") for c in containers)
    )


def _scaled(value: Any, replicas: int, round_up: bool) -> int:
    """An int-or-percent of ``replicas`` (Kubernetes' GetScaledValueFromIntOrPercent)."""
    if isinstance(value, str) and value.endswith("%"):
        try:
            pct = int(value[:-1])
        except ValueError:
            return 0
        whole, rest = divmod(pct * replicas, 100)
        return whole + (1 if round_up and rest else 0)
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return 0


def rolling_limits(deployment: Obj) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) in pods for the Deployment's RollingUpdate strategy."""
    spec = deployment.get("spec") or {}
    replicas = max(0, int(spec.get("replicas", 1)))
    rolling = (spec.get("strategy") or {}).get("rollingUpdate") or {}
    surge = _scaled(rolling.get("maxSurge", "25%"), replicas, round_up=True)
    unavailable = _scaled(rolling.get("maxUnavailable", "25%"), replicas, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1  # Kubernetes' fencepost rule: a rollout must be able to progress
    return surge, unavailable


def _deletion_order(pods: list[Obj]) -> list[Obj]:
    """Pods the controller would rather lose first: not Ready before Ready, then by name."""
    return sorted(pods, key=lambda p: (pod_ready(p), _meta(p).get("name", "")))


def plan_pods(
    deployment: Obj,
    pods: list[Obj],
    suffix: Callable[[], str] = random_suffix,
    namespace_injection: str | None = None,
) -> PodPlan:
    """Pods to create and delete now, on the way to ``replicas`` current, Ready pods;
    ``namespace_injection`` is the namespace's ``istio-injection`` label, if it has one."""
    spec = deployment.get("spec") or {}
    replicas = max(0, int(spec.get("replicas", 1)))
    thash = template_hash(deployment)
    mine = [p for p in pods if owned_by(p, deployment)]
    new = [p for p in mine if (_meta(p).get("labels") or {}).get("pod-template-hash") == thash]
    old = [p for p in mine if p not in new]
    plan = PodPlan()
    # Too many current pods: scale down (a rollout never leaves more than replicas of them).
    if len(new) > replicas:
        extra = _deletion_order(new)[: len(new) - replicas]
        plan.delete.extend(extra)
        new = [p for p in new if p not in extra]
    if not old:
        plan.create = _new_pods(deployment, pods, replicas - len(new), suffix, namespace_injection)
        return plan
    if (spec.get("strategy") or {}).get("type") == "Recreate":
        plan.delete.extend(old)
        return plan  # the new pods come on a later pass, once the old ones are gone
    surge, unavailable = rolling_limits(deployment)
    room = replicas + surge - len(new) - len(old)
    plan.create = _new_pods(
        deployment, pods, min(replicas - len(new), room), suffix, namespace_injection
    )
    min_available = replicas - unavailable
    new_unavailable = len(new) + len(plan.create) - sum(1 for p in new if pod_ready(p))
    # First old pods that are not Ready, as far as that keeps enough pods in the count...
    broken = [p for p in _deletion_order(old) if not pod_ready(p)]
    budget = len(new) + len(plan.create) + len(old) - min_available - new_unavailable
    gone = broken[: max(0, budget)]
    # ... then Ready ones, as long as min_available pods stay Ready.
    available = sum(1 for p in new + old if pod_ready(p) and p not in gone)
    healthy = [p for p in _deletion_order(old) if p not in gone]
    gone += healthy[: max(0, available - min_available)]
    plan.delete.extend(gone)
    return plan


def _new_pods(
    deployment: Obj,
    pods: list[Obj],
    count: int,
    suffix: Callable[[], str],
    namespace_injection: str | None,
) -> list[Obj]:
    meta = _meta(deployment)
    spec = deployment.get("spec") or {}
    thash = template_hash(deployment)
    template = spec.get("template") or {}
    namespace = meta.get("namespace") or "default"
    # Names need only be unique in the namespace: another may hold the very same one.
    taken = {_meta(p).get("name") for p in pods if (namespace_of(p) or "default") == namespace}
    created: list[Obj] = []
    for _ in range(max(0, count)):
        name = f"{meta['name']}-{thash}-{suffix()}"
        while name in taken:
            name = f"{meta['name']}-{thash}-{suffix()}"
        taken.add(name)
        tmeta = template.get("metadata") or {}
        labels = dict(tmeta.get("labels") or {})
        labels["pod-template-hash"] = thash
        pod_meta: Obj = {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": [owner_ref(deployment)],
        }
        if tmeta.get("annotations"):
            pod_meta["annotations"] = dict(tmeta["annotations"])
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": pod_meta,
            "spec": json.loads(json.dumps(template.get("spec") or {})),
        }
        created.append(inject_labels(pod, namespace_injection))
    return created


def is_router(pod: Obj) -> bool:
    return (_meta(pod).get("annotations") or {}).get(ROUTER_ANNOTATION) == "router"


def wants_sidecar(pod: Obj) -> bool:
    annotations = _meta(pod).get("annotations") or {}
    labels = _meta(pod).get("labels") or {}
    flag = annotations.get(INJECT_ANNOTATION, labels.get(INJECT_ANNOTATION, "true"))
    return str(flag).lower() != "false" and not is_router(pod)


def namespace_injection(objs: Iterable[Obj]) -> dict[str, str]:
    """Namespace name -> its ``istio-injection`` label, for the namespaces that have one."""
    out: dict[str, str] = {}
    for o in objs:
        if o.get("kind") == "Namespace" and o.get("apiVersion") == "v1":
            value = (_meta(o).get("labels") or {}).get(NAMESPACE_INJECTION_LABEL)
            if value is not None:
                out[str(_meta(o).get("name"))] = str(value)
    return out


def inject_labels(pod: Obj, namespace_injection: str | None = None) -> Obj:
    """``pod`` as the injector admits it (a new dict where changed; a label the user wrote
    is kept): the labels Istio's injector adds to a pod that gets a sidecar, or, when its
    namespace's ``istio-injection`` label (``namespace_injection``) is other than
    ``enabled`` and the pod says nothing itself, ``sidecar.istio.io/inject: "false"``."""
    meta = _meta(pod)
    labels = meta.get("labels") or {}
    said = INJECT_ANNOTATION in labels or INJECT_ANNOTATION in (meta.get("annotations") or {})
    if not said and not is_router(pod) and namespace_injection not in (None, "enabled"):
        return {**pod, "metadata": {**meta, "labels": {**labels, INJECT_ANNOTATION: "false"}}}
    if not wants_sidecar(pod) or TLS_MODE_LABEL in labels:
        return pod
    meta = {**_meta(pod), "labels": {**labels, TLS_MODE_LABEL: TLS_MODE_ISTIO}}
    return {**pod, "metadata": meta}
