"""What only the etcd store does: watches across processes, resuming after a lost member,
resyncing after compaction, and the choice of store remembered by a state directory."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.etcd_cluster import EtcdCluster
from tests.unit.store.conftest import etcd_store
from tests.unit.store.test_store_contract import key, se

from meshgate.store import ConfigStore, StoreError, open_store
from meshgate.store.base import Event


def compact(store: Any) -> None:
    """Compact the store's etcd up to its current revision (physically, so it is done)."""
    store.conn.run(store.conn.client.compact(store.revision(), physical=True))


def wait_for(what: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def member_url(cluster: EtcdCluster, index: int, prefix: str) -> str:
    return f"etcd://127.0.0.1:{cluster.members[index].client_port}{prefix}"


def names(batches: list[list[Event]]) -> list[tuple[str, str]]:
    return [(e.type, e.key.name) for batch in batches for e in batch]


def test_watch_hears_commits_of_another_process(etcd1: EtcdCluster, tmp_path: Path) -> None:
    url = f"{etcd1.store_url}/meshgate-test/other-process-{time.time_ns()}"
    heard: list[list[Event]] = []
    with etcd_store(url) as watcher:
        watcher.watch(heard.append)
        writer = textwrap.dedent(
            f"""
            from meshgate.store.etcd import EtcdStore
            from meshgate.store.etcd_conn import parse_store_url
            from tests.unit.store.test_store_contract import key, se
            with EtcdStore(parse_store_url({url!r})) as s:
                s.apply([se("a"), se("b")])
                s.delete([key("a")])
            """
        )
        subprocess.run([sys.executable, "-c", writer], check=True, timeout=60, cwd=Path.cwd())
        wait_for(lambda: len(heard) == 2)
        assert [[(e.type, e.key.name) for e in b] for b in heard] == [
            [("ADDED", "a"), ("ADDED", "b")],
            [("DELETED", "a")],
        ]
        assert heard[1][0].object["spec"]["hosts"] == ["aliyun.com"]


def test_watch_resumes_after_its_member_restarts_missing_and_repeating_nothing(
    etcd3: EtcdCluster, caplog: pytest.LogCaptureFixture
) -> None:
    prefix = f"/meshgate-test/resume-{time.time_ns()}"
    heard: list[list[Event]] = []
    # The watcher talks to member 0 only; the writer to member 1.
    with (
        etcd_store(member_url(etcd3, 0, prefix)) as watcher,
        etcd_store(member_url(etcd3, 1, prefix)) as writer,
    ):
        watcher.watch(heard.append)
        writer.apply([se("a")])
        wait_for(lambda: len(heard) == 1)
        caplog.set_level(logging.WARNING, logger="meshgate.store.etcd")
        etcd3.stop(0)
        writer.apply([se("b"), se("c")])
        writer.delete([key("a")])
        etcd3.start(0)
        writer.apply([se("d")])
        wait_for(lambda: len(heard) == 4)
        time.sleep(0.5)  # nothing repeated after the last
        assert names(heard) == [
            ("ADDED", "a"),
            ("ADDED", "b"),
            ("ADDED", "c"),
            ("DELETED", "a"),
            ("ADDED", "d"),
        ]
        assert "etcd watch on" in caplog.text and "resuming from revision" in caplog.text


def test_watch_resyncs_when_etcd_compacted_past_it(
    etcd3: EtcdCluster, caplog: pytest.LogCaptureFixture
) -> None:
    prefix = f"/meshgate-test/compact-{time.time_ns()}"
    heard: list[list[Event]] = []
    with (
        etcd_store(member_url(etcd3, 0, prefix)) as watcher,
        etcd_store(member_url(etcd3, 1, prefix)) as writer,
    ):
        writer.apply([se("a"), se("b")])
        watcher.watch(heard.append)
        writer.apply([se("c")])
        wait_for(lambda: len(heard) == 1)
        seen = writer.revision()
        caplog.set_level(logging.WARNING, logger="meshgate.store.etcd")
        etcd3.stop(0)
        writer.apply([se("a", host="changed.com")])
        writer.delete([key("b")])
        writer.apply([se("e")])
        compact(writer)
        etcd3.start(0)
        wait_for(lambda: len(heard) == 2)
        # One batch of differences: the changed, the deleted (identity only), the new.
        assert sorted(names(heard[1:])) == [("ADDED", "e"), ("DELETED", "b"), ("MODIFIED", "a")]
        deleted = next(e for e in heard[1] if e.type == "DELETED")
        assert deleted.object["metadata"]["name"] == "b"
        assert deleted.object["apiVersion"] == "networking.istio.io/v1"
        assert "compacted its history" in caplog.text and "full resync" in caplog.text
        with pytest.raises(StoreError, match="no longer kept"):
            watcher.events_since(seen)
        # And the watch goes on after the resync.
        writer.apply([se("f")])
        wait_for(lambda: len(heard) == 3)
        assert names(heard[2:]) == [("ADDED", "f")]


def test_open_store_remembers_etcd_for_later_commands(etcd1: EtcdCluster, tmp_path: Path) -> None:
    url = f"{etcd1.store_url}/meshgate-test/remember-{time.time_ns()}"
    home = tmp_path / "home"
    first: ConfigStore = open_store(home, url)
    try:
        first.apply([se("a")])
    finally:
        first.close()
    assert (home / "store.json").stat().st_mode & 0o777 == 0o600
    assert not (home / "store.db").exists()
    again = open_store(home)
    try:
        assert [s.key.name for s in again.list()] == ["a"]
    finally:
        again.close()
    # A fresh state directory on the same etcd sees the same objects.
    other = open_store(tmp_path / "other", url)
    try:
        assert [s.key.name for s in other.list()] == ["a"]
    finally:
        other.close()
    back = open_store(home, "sqlite")
    try:
        assert back.list() == [] and (home / "store.db").exists()
    finally:
        back.close()


def test_unreachable_etcd_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"etcd at etcd://127\.0\.0\.1:1 is unreachable"):
        open_store(tmp_path / "home", "etcd://127.0.0.1:1")
    assert not (tmp_path / "home" / "store.json").exists()


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("etcd://", "expected etcd://HOST:PORT"),
        ("etcd://host", "is not HOST:PORT"),
        ("etcd://host:99999", "is not HOST:PORT"),
        ("postgres://x:1", "expected sqlite or etcd://"),
    ],
)
def test_malformed_store_urls(tmp_path: Path, url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        open_store(tmp_path / "home", url)


def test_etcd_over_mutual_tls(tmp_path: Path) -> None:
    from tests.etcd_cluster import etcd_cluster

    with etcd_cluster(1, tls=True) as cluster:
        files = {k: str(v) for k, v in cluster.tls_files.items()}
        url = f"{cluster.store_url}/meshgate-test/tls"
        store = open_store(
            tmp_path / "home",
            url,
            cacert=files["ca"],
            cert=files["client"],
            key=files["client-key"],
        )
        try:
            store.apply([se("a")])
        finally:
            store.close()
        # Remembered with its options: a later command connects the same way.
        again = open_store(tmp_path / "home")
        try:
            assert [s.key.name for s in again.list()] == ["a"]
        finally:
            again.close()
        # Without a client certificate etcd refuses: an error naming the URL, nothing else.
        with pytest.raises(StoreError, match=f"etcd at {url}"):
            open_store(tmp_path / "other", url, cacert=files["ca"])


def _enable_auth(endpoint: str, password: str) -> None:
    """etcd's root user and role, then auth on (what `etcdctl user add root` ... does)."""
    import grpc
    from aetcd import rpc

    with grpc.insecure_channel(endpoint) as channel:
        auth = rpc.AuthStub(channel)
        auth.RoleAdd(rpc.AuthRoleAddRequest(name="root"), timeout=10)
        auth.UserAdd(rpc.AuthUserAddRequest(name="root", password=password), timeout=10)
        auth.UserGrantRole(rpc.AuthUserGrantRoleRequest(user="root", role="root"), timeout=10)
        auth.AuthEnable(rpc.AuthEnableRequest(), timeout=10)


def test_etcd_with_user_and_password(tmp_path: Path) -> None:
    from tests.etcd_cluster import etcd_cluster

    with etcd_cluster(1) as cluster:
        _enable_auth(cluster.endpoints, "s3cret")
        url = f"{cluster.store_url}/meshgate-test/auth"
        store = open_store(tmp_path / "home", url, user="root:s3cret")
        try:
            store.apply([se("a")])
        finally:
            store.close()
        assert "s3cret" in (tmp_path / "home" / "store.json").read_text()
        with pytest.raises(StoreError, match=f"etcd at {url}.*authentication failed"):
            open_store(tmp_path / "other", url, user="root:wrong")
        with pytest.raises(ValueError, match="needs a password"):
            open_store(tmp_path / "other", url, user="root")


def test_a_store_on_every_member_fails_over_when_its_member_dies(etcd3: EtcdCluster) -> None:
    url = f"{etcd3.store_url}/meshgate-test/failover-{time.time_ns()}"
    heard: list[list[Event]] = []
    with etcd_store(url) as store:
        store.watch(heard.append)
        store.apply([se("a")])
        # The channel uses the first member listed: kill it; the next calls move on.
        etcd3.stop(0, kill=True)
        try:
            assert store.apply([se("b")])[0].action == "created"
            store.delete([key("a")])
            assert [s.key.name for s in store.list()] == ["b"]
            wait_for(lambda: len(heard) == 3)
            assert names(heard) == [("ADDED", "a"), ("ADDED", "b"), ("DELETED", "a")]
        finally:
            etcd3.start(0)
