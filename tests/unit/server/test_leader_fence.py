"""The leader fence on a real etcd (tests/etcd_cluster.py): once a replica's lease is gone,
the writes its controllers still make are refused by etcd itself, whatever the process
believes (a pass that outlived its leadership: a pause, a slow etcd), and nothing of
them is written; the new leader's and every unfenced write (a user's apply, on any
replica) go through."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.etcd_cluster import etcd_cluster
from tests.unit.server.test_reconcile_rest import FakeRuntime
from tests.unit.server.test_reconcile_roles import deployment

from meshgate.api.meta import ResourceKey
from meshgate.server.leader import Etcd, LeaderElection
from meshgate.server.reconcile import Reconciler
from meshgate.store import Fence, Fenced
from meshgate.store.etcd import EtcdStore
from meshgate.store.etcd_conn import EtcdConfig, parse_store_url


@pytest.fixture(scope="module")
def config() -> Iterator[EtcdConfig]:
    with etcd_cluster(members=1) as cluster:
        yield parse_store_url(cluster.store_url)


def _config_map(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default"},
        "data": {"k": "v"},
    }


async def _until(check: Callable[[], bool], timeout: float) -> None:
    end = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < end, "condition not met in time"
        await asyncio.sleep(0.05)


def _stale_and_current(config: EtcdConfig) -> tuple[Fence, Fence]:
    """Replica a leads, its lease is revoked behind its back (it expired in etcd, as
    during a long pause), replica b leads: a's fence and b's. Both stop their campaigns
    (b's lease is left to expire: its fence stays good for its TTL)."""

    async def scenario() -> tuple[Fence, Fence]:
        key = f"leader-{uuid.uuid4().hex[:8]}"  # each test its own election
        a = LeaderElection(Etcd(config), {"replica": "a"}, key=key)
        b = LeaderElection(Etcd(config), {"replica": "b"}, key=key, ttl=30)
        task_a = asyncio.create_task(a.run())
        await _until(lambda: a.leading, 5)
        stale = a.fence()
        assert stale is not None
        task_a.cancel()  # a says nothing more: as a paused process
        await asyncio.gather(task_a, return_exceptions=True)
        await b.etcd.call(lambda c: c.revoke_lease(stale.lease))
        task_b = asyncio.create_task(b.run())
        await _until(lambda: b.leading, 5)
        current = b.fence()
        assert current is not None and current.key == stale.key
        task_b.cancel()
        await asyncio.gather(task_b, return_exceptions=True)
        await a.etcd.close()
        await b.etcd.close()
        return stale, current

    return asyncio.run(scenario())


def test_writes_under_a_lost_lease_are_refused(config: EtcdConfig) -> None:
    stale, current = _stale_and_current(config)
    with EtcdStore(config) as store:
        store.apply([_config_map("kept")])
        key = ResourceKey("", "ConfigMap", "default", "kept")
        before = store.revision()
        with store.fenced(stale):
            with pytest.raises(Fenced, match="held under another lease"):
                store.apply([_config_map("late")])
            with pytest.raises(Fenced):
                store.update_status(key, {"phase": "late"})
            with pytest.raises(Fenced):
                store.delete([key])
        assert store.revision() == before  # nothing of them was written
        assert store.get(ResourceKey("", "ConfigMap", "default", "late")) is None
        assert "status" not in store.get(key).object  # type: ignore[union-attr]
        # Unfenced (a user's apply on any replica), and the new leader's: written.
        store.apply([_config_map("user")])
        with store.fenced(current):
            store.apply([_config_map("leader")])
        for name in ("user", "leader"):
            assert store.get(ResourceKey("", "ConfigMap", "default", name)) is not None
        # The fence is the calling thread's own: another thread's writes are not fenced.
        with store.fenced(stale):
            asyncio.run(asyncio.to_thread(store.apply, [_config_map("other-thread")]))
        assert store.get(ResourceKey("", "ConfigMap", "default", "other-thread")) is not None


def test_a_pass_that_outlived_its_lease_makes_nothing(
    config: EtcdConfig, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The controllers of a replica that still believes it leads (its ``leading`` not yet
    updated) run, but their writes are refused: no pod for the Deployment, a warning,
    and the pass does not settle; the new leader's pass makes the pod."""
    stale, current = _stale_and_current(config)
    fence = stale
    with EtcdStore(config) as store:
        store.apply([deployment("web")])
        r = Reconciler(
            tmp_path,
            store,
            FakeRuntime(),  # type: ignore[arg-type]
            tmp_path / "x.sock",
            leading=lambda: True,
            fence=lambda: fence,
            kubelet=False,
        )
        with caplog.at_level(logging.WARNING, logger="meshgate.reconcile"):
            r.run_once()
        assert store.list(kind="Pod") == []
        assert r.fenced_writes == 1
        assert "leadership is gone" in caplog.text
        fence = current  # the same code as the new leader: its writes go through
        for _ in range(3):
            r.run_once()
        (made,) = store.list(kind="Pod")
        assert made.object["metadata"]["name"].startswith("web-")
        assert r.fenced_writes == 1
