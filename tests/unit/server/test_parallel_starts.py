"""Pods start in parallel (issue 14 part 6): a pass hands its pod starts to a bounded pool and
goes on; a start that ends later is taken up by the next pass (its status, or its failure
and back-off), and a pod being started is never started twice."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from meshgate.api.meta import ResourceKey
from meshgate.runtime.pods import ContainerState, PodError, PodSpec, PodState
from meshgate.server import reconcile
from meshgate.server.reconcile import Reconciler
from meshgate.store import SqliteStore


def pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"},
        "spec": {"containers": [{"name": "app", "image": "busybox", "command": ["sleep", "9"]}]},
    }


class GatedRuntime:
    """Starts that wait for `gate` (then fail if `fail` is set); counts them, and how many
    ran at once at most."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.fail = False
        self.tries: dict[str, int] = {}
        self.running: dict[tuple[str, str], PodSpec] = {}
        self.now = self.most = 0
        self._lock = threading.Lock()

    def start_pod(self, spec: PodSpec) -> None:
        with self._lock:
            self.tries[spec.name] = self.tries.get(spec.name, 0) + 1
            self.now += 1
            self.most = max(self.most, self.now)
        try:
            assert self.gate.wait(10), "start never released"
            if self.fail:
                raise PodError("iptables-restore: command not found")
            self.running[(spec.namespace, spec.name)] = spec
        finally:
            with self._lock:
                self.now -= 1

    def pod_states(self) -> list[PodState]:
        return [
            PodState(
                name=s.name,
                namespace=s.namespace,
                uid=s.uid,
                ip=s.ip or "",
                netns="ns",
                phase="Running",
                reason="",
                message="",
                containers=[ContainerState("app", "running", restart_count=0)],
                labels={},
            )
            for s in list(self.running.values())
        ]

    def reconcile(self) -> None:
        pass

    def stop_pod(self, namespace: str, name: str) -> None:
        self.running.pop((namespace, name), None)


class NoFilter:
    def sync(self, objs: Any) -> None:
        pass


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    with SqliteStore(tmp_path / "s.db") as s:
        yield s


def reconciler(store: SqliteStore, runtime: GatedRuntime, tmp_path: Path, **kw: Any) -> Reconciler:
    r = Reconciler(tmp_path, store, runtime, tmp_path / "x.sock", **kw)  # type: ignore[arg-type]
    r._node_filter = NoFilter()  # type: ignore[assignment]
    return r


def a_pass(r: Reconciler, store: SqliteStore) -> None:
    r._pods([s.object for s in store.list()])


def test_starts_run_at_once_up_to_the_bound(store: SqliteStore, tmp_path: Path) -> None:
    runtime = GatedRuntime()
    r = reconciler(store, runtime, tmp_path, starts=3, start_wait=0.0)
    store.apply([pod(f"p{i}") for i in range(5)])
    a_pass(r, store)  # hands all five to the pool and returns at once
    for _ in range(250):
        if runtime.now == 3:
            break
        time.sleep(0.02)
    assert runtime.now == 3, "three starts should be under way together"
    runtime.gate.set()
    r.close()
    assert runtime.most == 3  # never more than the bound
    a_pass(r, store)
    for i in range(5):
        status = store.get(ResourceKey("", "Pod", "default", f"p{i}")).object["status"]  # type: ignore[union-attr]
        assert status["phase"] == "Running", status
    assert runtime.tries == {f"p{i}": 1 for i in range(5)}


def test_a_start_that_fails_after_its_pass_backs_off_and_says_why(
    store: SqliteStore, tmp_path: Path
) -> None:
    runtime = GatedRuntime()
    woken = threading.Event()
    r = reconciler(store, runtime, tmp_path, starts=2, start_wait=0.0, on_started=woken.set)
    store.apply([pod("p")])
    a_pass(r, store)
    a_pass(r, store)  # still starting: not started again, nothing reported yet
    assert runtime.tries == {"p": 1}
    key = ResourceKey("", "Pod", "default", "p")
    assert "reason" not in store.get(key).object["status"]  # type: ignore[union-attr]
    runtime.fail = True
    runtime.gate.set()
    assert woken.wait(5), "the end of a start must wake a pass"
    a_pass(r, store)
    status = store.get(key).object["status"]  # type: ignore[union-attr]
    assert status["phase"] == "Pending" and status["reason"] == "StartError"
    assert status["message"] == (
        "iptables-restore: command not found (back-off 10s before the next try)"
    )
    a_pass(r, store)  # within the back-off: not tried again
    r.close()
    assert runtime.tries == {"p": 1}


def test_pod_starts_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert reconcile.pod_starts({}) == 4  # min(8, 2 x CPUs)
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert reconcile.pod_starts({}) == 8
    assert reconcile.pod_starts({"MESHGATE_POD_STARTS": "1"}) == 1
    for bad in ("0", "many", "-3", "65"):
        with pytest.raises(ValueError, match=f"MESHGATE_POD_STARTS='{bad}': want how many"):
            reconcile.pod_starts({"MESHGATE_POD_STARTS": bad})
