"""The patch kinds ``meshgate patch`` applies: RFC 7386, and Kubernetes' strategic merge."""

from __future__ import annotations

import pytest

from meshgate.cli.patch import PatchError, apply_patch, merge_patch, strategic_patch


def test_merge_patch_is_rfc_7386() -> None:
    target = {"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]}
    patch = {"a": "z", "c": {"f": None}, "l": [3]}
    assert merge_patch(target, patch) == {"a": "z", "c": {"d": "e"}, "l": [3]}
    assert target["c"] == {"d": "e", "f": "g"}  # not modified


def test_strategic_merges_keyed_lists_and_honours_delete_and_replace() -> None:
    pod = {
        "kind": "Pod",
        "spec": {
            "containers": [
                {"name": "app", "image": "a", "ports": [{"containerPort": 80, "name": "http"}]},
                {"name": "side", "image": "s"},
            ],
            "volumes": [{"name": "v", "emptyDir": {}}],
        },
    }
    patch = {
        "spec": {
            "containers": [
                {"name": "app", "ports": [{"containerPort": 81}]},
                {"name": "side", "$patch": "delete"},
                {"name": "new", "image": "n"},
            ],
            "volumes": [{"name": "v", "$patch": "replace", "configMap": {"name": "c"}}],
        }
    }
    got = strategic_patch(pod, patch, "Pod")
    assert got["spec"]["containers"] == [
        {"name": "app", "image": "a", "ports": [{"containerPort": 80, "name": "http"},
                                                {"containerPort": 81}]},
        {"name": "new", "image": "n"},
    ]  # fmt: skip
    assert got["spec"]["volumes"] == [{"name": "v", "configMap": {"name": "c"}}]


def test_service_ports_merge_by_port_and_other_lists_are_replaced() -> None:
    svc = {"kind": "Service", "spec": {"ports": [{"port": 80, "name": "http"}], "x": [1]}}
    got = strategic_patch(svc, {"spec": {"ports": [{"port": 80, "targetPort": 8080}], "x": [2]}},
                          "Service")  # fmt: skip
    assert got["spec"] == {"ports": [{"port": 80, "name": "http", "targetPort": 8080}], "x": [2]}


def test_unsupported_directives_and_wrong_shapes_are_refused() -> None:
    with pytest.raises(PatchError, match=r"\$retainKeys is not supported"):
        apply_patch({"kind": "Pod"}, {"spec": {"$retainKeys": ["a"]}}, "strategic")
    with pytest.raises(PatchError, match="list of operations"):
        apply_patch({}, {"op": "add"}, "json")
    with pytest.raises(PatchError, match="must be a JSON object"):
        apply_patch({}, [1], "merge")
