"""Who does what among replicas (docs/replicas.md): the controllers that write objects run
only on the leader; the kubelet's part (pod IPs, starts, status) only on the node owner;
every replica builds the snapshot it serves xDS from."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.unit.server.test_reconcile_rest import (
    CountingStore,
    FakeRuntime,
    pod,
    service_entry,
    settle,
)

from meshgate.runtime import netpolicy, servicenat
from meshgate.server.reconcile import Reconciler
from meshgate.store import open_store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[CountingStore]:
    s = open_store(tmp_path / "home")
    yield CountingStore(s)
    s.close()


@pytest.fixture(autouse=True)
def no_node(monkeypatch: pytest.MonkeyPatch) -> None:
    """No node namespace here: the node's rules are rendered but not installed."""
    monkeypatch.setattr(netpolicy, "apply", lambda node, text: None)
    monkeypatch.setattr(servicenat, "apply", lambda node, text: None)


def deployment(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "curl", "command": ["sleep"]}]},
            },
        },
    }


def pods_in(store: CountingStore) -> list[dict[str, Any]]:
    return [s.object for s in store.list(kind="Pod")]


def test_controllers_run_only_while_leading(store: CountingStore, tmp_path: Path) -> None:
    leading = False
    runtime = FakeRuntime()
    r = Reconciler(
        tmp_path,
        store,  # type: ignore[arg-type]
        runtime,  # type: ignore[arg-type]
        tmp_path / "x.sock",
        leading=lambda: leading,
    )
    store.apply([deployment("web")])
    settle(r)
    assert pods_in(store) == [], "a follower's controllers made pods"
    assert "status" not in store.list(kind="Deployment")[0].object
    leading = True  # the election changed: the next pass runs the controllers
    settle(r)
    (made,) = pods_in(store)
    assert made["metadata"]["name"].startswith("web-")
    assert made["status"]["podIP"].startswith("10.34.")  # this node owner's kubelet part
    assert runtime.pods and store.list(kind="Deployment")[0].object["status"]["replicas"] == 1


def test_a_replica_without_the_node_leaves_pods_to_their_node(
    store: CountingStore, tmp_path: Path
) -> None:
    runtime = FakeRuntime()
    r = Reconciler(
        tmp_path,
        store,  # type: ignore[arg-type]
        runtime,  # type: ignore[arg-type]
        [f"/run/meshgate/abc/xds/xds-{i}.sock" for i in range(2)],
        kubelet=False,
    )
    store.apply([pod("sleep"), service_entry("a"), deployment("web")])
    settle(r)
    assert runtime.reconciles == 0 and runtime.pods == {}
    assert all("podIP" not in (p.get("status") or {}) for p in pods_in(store))
    # It leads: its controllers made the Deployment's pod (for the node owner to start).
    assert len(pods_in(store)) == 2
    assert "a.example.com" in r.snapshot.services_by_host
    full = r.controller_passes
    settle(r)
    assert r.controller_passes == full, "a replica at rest must settle"
