"""Pushes only on change (issue 14): a reconcile pass over an unchanged store keeps its
snapshot object (the control plane pushes only for a new one), and the CA says when
certificates next change by themselves, so a push is due then and not before."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

from meshgate.security.ca import MeshCA
from meshgate.server.reconcile import Reconciler
from meshgate.store import open_store


class NoRuntime:
    def pod_states(self) -> list[Any]:
        return []


def service_entry(name: str, host: str) -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1beta1",
        "kind": "ServiceEntry",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "hosts": [host],
            "location": "MESH_EXTERNAL",
            "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}],
            "resolution": "DNS",
        },
    }


def test_unchanged_store_keeps_the_snapshot_object(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    try:
        r = Reconciler(tmp_path, store, NoRuntime(), tmp_path / "x.sock")  # type: ignore[arg-type]
        store.apply([service_entry("a", "a.example.com")])
        assert r.refresh_snapshot()
        first = r.snapshot
        assert first.service("a.example.com") is not None
        for _ in range(3):
            assert not r.refresh_snapshot()
            assert r.snapshot is first
        assert r.snapshot_builds == 1
        # Re-applying the same content changes nothing either.
        store.apply([service_entry("a", "a.example.com")])
        assert not r.refresh_snapshot()
        # A real change (another resource, or a new version of one) builds a new one.
        store.apply([service_entry("b", "b.example.com")])
        assert r.refresh_snapshot()
        assert r.snapshot is not first and r.snapshot.service("b.example.com") is not None
        store.apply([service_entry("b", "c.example.com")])
        assert r.refresh_snapshot()
        assert r.snapshot.service("c.example.com") is not None
        assert r.snapshot_builds == 3
    finally:
        store.close()


class Clock:
    def __init__(self) -> None:
        self.now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)

    def __call__(self) -> datetime.datetime:
        return self.now


def test_ca_next_change_is_renewal_and_rotation_times(tmp_path: Path) -> None:
    clock = Clock()
    ca = MeshCA(tmp_path, lifetime=datetime.timedelta(hours=2), clock=clock)
    start = clock.now
    assert ca.next_change(after=start) is None  # nothing issued, nothing rotating
    held = ca.workload("spiffe://cluster.local/ns/default/sa/sleep")
    renewal = held.renew_at  # half its life from issue
    assert ca.next_change(after=start) == renewal
    assert ca.next_change(after=renewal) is None  # past it: nothing more until re-issued
    clock.now = renewal + datetime.timedelta(seconds=1)
    again = ca.workload("spiffe://cluster.local/ns/default/sa/sleep")
    assert again.cert_chain != held.cert_chain
    assert ca.next_change(after=clock.now) > renewal  # type: ignore[operator]
    # A rotation: its activation is a change to come, before any renewal.
    ca.rotate(activate_after=datetime.timedelta(seconds=5))
    assert ca.next_change(after=clock.now) == clock.now + datetime.timedelta(seconds=5)
