"""A reconcile pass at rest (issue 14 part 1): the runtime's supervision runs in every pass,
the controllers only when the store's revision, the pods the runtime observes, or
something pending changed since the last full pass; the store is listed once per revision."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from meshgate.api.meta import ResourceKey
from meshgate.runtime import netpolicy, servicenat
from meshgate.runtime.podspec import Backoff, ContainerState, PodSpec, PodState
from meshgate.server.reconcile import Reconciler
from meshgate.store import ConfigStore, open_store

Obj = dict[str, Any]


class FakeRuntime:
    """Pods that start at once and run until told otherwise; counts what it is asked."""

    def __init__(self) -> None:
        self.pods: dict[tuple[str, str], PodState] = {}
        self.reconciles = 0
        self.fail_starts = False

    def reconcile(self) -> None:
        self.reconciles += 1

    def pod_states(self) -> list[PodState]:
        return [self.pods[k] for k in sorted(self.pods)]

    def start_pod(self, spec: PodSpec) -> PodState:
        if self.fail_starts:
            raise RuntimeError("no such command")
        app = ContainerState(name="sleep", state="running", pid=100, started_at=1.0)
        state = PodState(
            spec.name, spec.namespace, spec.uid, spec.ip, "mg-x", "Running", "", "", [app], {}
        )
        self.pods[(spec.namespace, spec.name)] = state
        return state

    def stop_pod(self, namespace: str, name: str) -> None:
        self.pods.pop((namespace, name), None)


class CountingStore:
    """The store, with its full listings counted (each one decodes every body)."""

    def __init__(self, inner: ConfigStore) -> None:
        self.inner = inner
        self.lists = 0

    def list(self, *args: Any, **kwargs: Any) -> Any:
        if not args and not kwargs:
            self.lists += 1
        return self.inner.list(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


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


def pod(name: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
        "spec": {"containers": [{"name": "sleep", "image": "curl", "command": ["sleep"]}]},
    }


def service_entry(name: str) -> Obj:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "ServiceEntry",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "hosts": [f"{name}.example.com"],
            "location": "MESH_EXTERNAL",
            "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}],
            "resolution": "DNS",
        },
    }


def settle(r: Reconciler, passes: int = 5) -> None:
    for _ in range(passes):
        r.run_once()


def reconciler(store: CountingStore, runtime: FakeRuntime, tmp_path: Path) -> Reconciler:
    return Reconciler(tmp_path, store, runtime, tmp_path / "x.sock")  # type: ignore[arg-type]


def test_passes_at_rest_run_the_runtime_but_no_controller(
    store: CountingStore, tmp_path: Path
) -> None:
    runtime = FakeRuntime()
    r = reconciler(store, runtime, tmp_path)
    store.apply([pod("sleep"), service_entry("a")])
    settle(r)
    full, lists, reconciles, snap = r.controller_passes, store.lists, runtime.reconciles, r.snapshot
    for _ in range(10):
        assert r.run_once() is snap
    assert r.passes >= 15 and r.controller_passes == full
    assert store.lists == lists, "the store was listed at rest"
    assert runtime.reconciles == reconciles + 10, "the runtime's supervision must go on"


def test_a_full_pass_lists_the_store_once_per_revision(
    store: CountingStore, tmp_path: Path
) -> None:
    r = reconciler(store, FakeRuntime(), tmp_path)
    store.apply([service_entry(f"s{i}") for i in range(5)])
    lists = store.lists
    r.run_once()  # no pods, no gateways: the pass writes nothing, so one listing serves all
    assert store.lists == lists + 1


def test_a_container_state_change_is_noticed_and_written(
    store: CountingStore, tmp_path: Path
) -> None:
    runtime = FakeRuntime()
    r = reconciler(store, runtime, tmp_path)
    store.apply([pod("sleep")])
    settle(r)
    full = r.controller_passes
    # The runtime noticed the app die and counted a restart (its own reconcile did that).
    # (A new observation, as the runtime makes one per look.)
    crashed = ContainerState(
        name="sleep", state="waiting", reason="CrashLoopBackOff", exit_code=137, restart_count=1
    )
    key = ("default", "sleep")
    runtime.pods[key] = dataclasses.replace(runtime.pods[key], containers=[crashed])
    r.run_once()
    assert r.controller_passes == full + 1
    stored = store.get(next(s.key for s in store.list(kind="Pod")))
    assert stored is not None
    assert stored.object["status"]["containerStatuses"][0]["restartCount"] == 1
    settle(r)
    full = r.controller_passes
    settle(r)
    assert r.controller_passes == full


def test_a_store_change_runs_the_controllers_and_builds_a_snapshot(
    store: CountingStore, tmp_path: Path
) -> None:
    r = reconciler(store, FakeRuntime(), tmp_path)
    settle(r)
    full, snap = r.controller_passes, r.snapshot
    store.apply([service_entry("late")])
    r.run_once()
    assert r.controller_passes == full + 1
    assert r.snapshot is not snap and r.snapshot.service("late.example.com") is not None


def test_a_pod_that_failed_to_start_keeps_the_controllers_trying(
    store: CountingStore, tmp_path: Path
) -> None:
    runtime = FakeRuntime()
    runtime.fail_starts = True
    r = reconciler(store, runtime, tmp_path)
    r.start_backoff = Backoff(start=0.0)  # retried at once here (the kubelet waits 10 s)
    store.apply([pod("sleep")])
    settle(r)
    full = r.controller_passes
    r.run_once()
    assert r.controller_passes == full + 1  # still pending: tried again
    runtime.fail_starts = False
    settle(r)
    assert ("default", "sleep") in runtime.pods
    full = r.controller_passes
    settle(r)
    assert r.controller_passes == full


def test_rules_that_failed_to_install_are_tried_again(
    store: CountingStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    def broken(node: str, text: str) -> None:
        calls.append(text)
        raise OSError("iptables-restore failed")

    monkeypatch.setattr(netpolicy, "apply", broken)
    r = reconciler(store, FakeRuntime(), tmp_path)
    store.apply([pod("sleep")])
    settle(r, 3)
    assert len(calls) >= 3  # each pass tries again while it fails
    monkeypatch.setattr(netpolicy, "apply", lambda node, text: None)
    r.run_once()
    full = r.controller_passes
    settle(r)
    assert r.controller_passes == full


def test_a_change_made_while_a_pass_runs_is_taken_by_the_next(
    store: CountingStore, tmp_path: Path
) -> None:
    """An API write lands between the pass's first listing and its last: the pass settles
    on what it read first, so the next one runs the controllers and takes the change."""
    r = reconciler(store, FakeRuntime(), tmp_path)
    settle(r)
    store.apply([service_entry("first")])
    # The pass reads the store by listing it or by the events since its listing: the
    # write lands right after whichever read comes first.
    inner_list, inner_events = store.list, store.events_since

    def then_write(read: Any) -> Any:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            out = read(*args, **kwargs)
            store.list, store.events_since = inner_list, inner_events  # type: ignore[method-assign]
            store.apply([service_entry("meanwhile")])
            return out

        return wrapped

    store.list = then_write(inner_list)  # type: ignore[method-assign]
    store.events_since = then_write(inner_events)  # type: ignore[method-assign]
    r.run_once()
    full = r.controller_passes
    r.run_once()
    assert r.controller_passes == full + 1
    assert r.snapshot.service("meanwhile.example.com") is not None


def test_a_change_is_read_from_its_events_not_by_listing_the_store_again(
    store: CountingStore, tmp_path: Path
) -> None:
    """After the first listing, a pass takes the events since it (one or two bodies to
    decode, not every object's), adds, changes and removes what they say, and lists the
    store afresh only when those events are no longer kept."""
    r = reconciler(store, FakeRuntime(), tmp_path)
    store.apply([service_entry(f"se{i}") for i in range(5)])
    settle(r)
    lists = store.lists
    store.apply([service_entry("late")])
    store.delete([ResourceKey("networking.istio.io", "ServiceEntry", "default", "se0")])
    settle(r)
    assert store.lists == lists
    assert r.snapshot.service("late.example.com") is not None
    assert r.snapshot.service("se0.example.com") is None
    assert r.snapshot.service("se1.example.com") is not None
    # What the pass holds is what a fresh listing says.
    assert [(s.key, s.resource_version) for s in r._stored()] == [
        (s.key, s.resource_version) for s in store.inner.list()
    ]
