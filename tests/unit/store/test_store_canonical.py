"""The pure write rules: identity, server-managed metadata, generation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from meshgate.api.meta import ResourceKey
from meshgate.store.canonical import Current, key_of, now_rfc3339, plan_write, with_status


def se(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "ServiceEntry",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"hosts": ["aliyun.com"], **spec},
    }


def test_key_of_namespaced_core_and_cluster_scoped() -> None:
    assert key_of(se()) == ResourceKey("networking.istio.io", "ServiceEntry", "default", "web")
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}}
    assert key_of(ns) == ResourceKey("", "Namespace", "", "istio-system")


@pytest.mark.parametrize(
    "bad",
    [
        None,
        {"kind": "X", "metadata": {"name": "a"}},
        {"apiVersion": "v1", "metadata": {"name": "a"}},
        {"apiVersion": "v1", "kind": "X"},
        {"apiVersion": "v1", "kind": "X", "metadata": {}},
        {"apiVersion": "v1", "kind": "X", "metadata": {"name": ""}},
        {"apiVersion": "v1", "kind": "X", "metadata": {"name": "a", "namespace": 3}},
    ],
)
def test_key_of_rejects_objects_without_identity(bad: Any) -> None:
    with pytest.raises(ValueError, match="object 7"):
        key_of(bad, "object 7")


def test_create_sets_server_fields_and_ignores_supplied_ones() -> None:
    incoming = se()
    incoming["metadata"].update(uid="forged", resourceVersion="999", generation=42)
    incoming["status"] = {"phase": "forged"}
    plan = plan_write(None, incoming, revision=5, now="2026-01-01T00:00:00Z", uid="u-1")
    meta = plan.object["metadata"]
    assert plan.action == "created"
    assert (meta["uid"], meta["resourceVersion"], meta["generation"]) == ("u-1", "5", 1)
    assert meta["creationTimestamp"] == "2026-01-01T00:00:00Z"
    assert "status" not in plan.object
    assert incoming["metadata"]["uid"] == "forged", "input must not be mutated"


def stored(obj: dict[str, Any]) -> Current:
    plan = plan_write(None, obj, revision=1, now="2026-01-01T00:00:00Z", uid="u-1")
    return Current({**plan.object, "status": {"ready": True}}, plan.generation)


def test_round_trip_of_stored_object_is_unchanged() -> None:
    current = stored(se())
    again = {**current.object, "status": {"ready": False}}
    plan = plan_write(current, again, revision=9, now="later", uid="u-2")
    assert plan.action == "unchanged"
    assert plan.object is current.object


def test_spec_change_bumps_generation_and_keeps_identity_and_status() -> None:
    current = stored(se())
    plan = plan_write(current, se(resolution="DNS"), revision=7, now="later", uid="u-2")
    meta = plan.object["metadata"]
    assert (plan.action, plan.generation, meta["generation"]) == ("configured", 2, 2)
    assert (meta["uid"], meta["creationTimestamp"]) == ("u-1", "2026-01-01T00:00:00Z")
    assert meta["resourceVersion"] == "7"
    assert plan.object["status"] == {"ready": True}


def test_label_change_is_configured_without_generation_bump() -> None:
    current = stored(se())
    labelled = se()
    labelled["metadata"]["labels"] = {"app": "web"}
    plan = plan_write(current, labelled, revision=3, now="later", uid="")
    assert (plan.action, plan.generation) == ("configured", 1)
    assert plan.object["metadata"]["labels"] == {"app": "web"}


def test_with_status_replaces_and_removes() -> None:
    obj = stored(se()).object
    new = with_status(obj, {"podIP": "10.0.0.2"}, revision=4)
    assert new["status"] == {"podIP": "10.0.0.2"}
    assert new["metadata"]["resourceVersion"] == "4"
    assert "status" not in with_status(obj, {}, revision=5)
    assert obj["status"] == {"ready": True}


def test_now_is_rfc3339_utc() -> None:
    moment = datetime(2026, 3, 4, 5, 6, 7, tzinfo=timezone(timedelta(hours=8)))
    assert now_rfc3339(moment) == "2026-03-03T21:06:07Z"
    assert now_rfc3339().endswith("Z")
    assert datetime.strptime(now_rfc3339(), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
