"""A pod whose start fails: Pending with the error, retried with back-off (not every pass),
and once it runs its status is the runtime's, with no StartError left behind."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from meshgate.api.meta import ResourceKey
from meshgate.runtime.pods import ContainerState, PodError, PodSpec, PodState
from meshgate.server import podsync
from meshgate.server.reconcile import Reconciler
from meshgate.store import SqliteStore

POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "p", "namespace": "default", "uid": "u1"},
    "spec": {"containers": [{"name": "app", "image": "busybox", "command": ["sleep", "9"]}]},
}
KEY = ResourceKey("", "Pod", "default", "p")


class FlakyRuntime:
    """Fails the first `fails` starts (as a node without iptables-restore would)."""

    def __init__(self, fails: int) -> None:
        self.fails = fails
        self.tries = 0
        self.running: dict[tuple[str, str], PodSpec] = {}

    def start_pod(self, spec: PodSpec) -> None:
        self.tries += 1
        if self.tries <= self.fails:
            raise PodError("iptables-restore: command not found")
        self.running[(spec.namespace, spec.name)] = spec

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
            for s in self.running.values()
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


def test_start_failure_backs_off_then_runs_with_a_true_status(
    store: SqliteStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(podsync.time, "monotonic", lambda: clock[0])
    runtime = FlakyRuntime(fails=2)
    r = Reconciler(tmp_path, store, runtime, tmp_path / "xds.sock")  # type: ignore[arg-type]
    r._node_filter = NoFilter()  # type: ignore[assignment]
    store.apply([POD])

    def passes(n: int, step: float) -> None:
        for _ in range(n):
            r._pods([s.object for s in store.list()])
            clock[0] += step

    passes(1, 0.0)
    status = store.get(KEY).object["status"]  # type: ignore[union-attr]
    assert status["phase"] == "Pending" and status["reason"] == "StartError"
    assert status["message"] == (
        "iptables-restore: command not found (back-off 10s before the next try)"
    )
    passes(9, 1.0)  # a pass a second for 9 s: no retry within the back-off
    assert runtime.tries == 1
    passes(2, 1.0)
    assert runtime.tries == 2  # retried once the 10 s were up, failed again: 20 s now
    assert "back-off 20s" in store.get(KEY).object["status"]["message"]  # type: ignore[union-attr]
    passes(19, 1.0)
    assert runtime.tries == 2
    passes(3, 1.0)
    assert runtime.tries == 3
    status = store.get(KEY).object["status"]  # type: ignore[union-attr]
    assert status["phase"] == "Running"
    assert "reason" not in status and "message" not in status
