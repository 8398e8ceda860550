"""Taint-based eviction's rules (server/eviction.py): which pods of a node that is not
Ready go, and when, by their tolerations and Kubernetes' default."""

from __future__ import annotations

import datetime
from typing import Any

from meshgate.server import eviction, nodes

NOW = datetime.datetime(2026, 12, 7, 12, 0, 0, tzinfo=datetime.UTC)


def node(name: str, ready: bool, seconds_ago: float, reason: str = "NodeStatusUnknown") -> Any:
    obj = nodes.node_object(name, "10.35.0.0/16", "10.35.0.1", ready=ready)
    cond = obj["status"]["conditions"][0]
    cond["reason"] = reason if not ready else cond["reason"]
    when = NOW - datetime.timedelta(seconds=seconds_ago)
    cond["lastTransitionTime"] = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    return obj


def pod(name: str, on: str | None, tolerations: list[dict[str, Any]] | None = None) -> Any:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "curl"}]}
    if on:
        spec["nodeName"] = on
    if tolerations is not None:
        spec["tolerations"] = tolerations
    return {"kind": "Pod", "metadata": {"name": name, "namespace": "default"}, "spec": spec}


def names(objs: list[Any]) -> tuple[list[str], bool]:
    gone, later = eviction.due(objs, NOW)
    return sorted(p["metadata"]["name"] for p, _ in gone), later


UNREACHABLE_5S = {"key": eviction.UNREACHABLE, "operator": "Exists", "effect": "NoExecute",
                  "tolerationSeconds": 5}  # fmt: skip


def test_default_toleration_is_kubernetes_300s() -> None:
    objs = [node("node-2", False, 299), pod("a", "node-2")]
    assert names(objs) == ([], True)
    objs = [node("node-2", False, 301), pod("a", "node-2")]
    assert names(objs) == (["a"], False)


def test_pods_elsewhere_and_ready_nodes_are_left_alone() -> None:
    objs = [
        node("node-2", True, 1000),
        node("node-3", False, 1000),
        pod("on-ready", "node-2"),
        pod("on-own-node", None),
        pod("on-own-node-named", nodes.OWN_NODE),
        pod("on-silent", "node-3"),
    ]
    assert names(objs) == (["on-silent"], False)
    # The control plane's own node is never tainted here, even if a status said so.
    own = node(nodes.OWN_NODE, False, 1000)
    assert names([own, pod("x", nodes.OWN_NODE)]) == ([], False)


def test_tolerations_decide() -> None:
    forever = {"operator": "Exists"}  # no key: every taint, for ever
    wrong_effect = {**UNREACHABLE_5S, "effect": "NoSchedule"}
    not_ready_only = {**UNREACHABLE_5S, "key": eviction.NOT_READY}
    objs = [
        node("node-2", False, 10),
        pod("short", "node-2", [UNREACHABLE_5S]),
        pod("forever", "node-2", [forever]),
        pod("wrong-effect", "node-2", [wrong_effect]),  # lists the key: no default added
        pod("other-key", "node-2", [not_ready_only]),  # the default 300 s applies
        pod("long", "node-2", [{**UNREACHABLE_5S, "tolerationSeconds": 60}]),
    ]
    assert names(objs) == (["short", "wrong-effect"], True)


def test_ready_false_is_the_not_ready_taint() -> None:
    objs = [
        node("node-2", False, 10, reason="KubeletNotReady"),
        pod("tolerates-unreachable", "node-2", [UNREACHABLE_5S]),
        pod("tolerates-not-ready", "node-2", [{**UNREACHABLE_5S, "key": eviction.NOT_READY}]),
    ]
    assert names(objs) == (["tolerates-not-ready"], True)
