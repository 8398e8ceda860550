"""Fixtures of the store contract suite: every test that takes ``backend`` (or ``store``,
``make_store``) runs once on SQLite and once on a real etcd (tests/etcd_cluster.py).

Rules: each etcd test gets its own key prefix on one etcd member shared by the session, so
tests never see each other's objects; tests that stop members or compact etcd's history
take ``etcd3`` (three members of their own). ``make_store`` opens another store on the same
data (SQLite: the same file; etcd: the same prefix), as a second process would.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.etcd_cluster import EtcdCluster, etcd_cluster

from meshgate.store import ConfigStore, SqliteStore

MakeStore = Callable[..., Any]


@pytest.fixture(scope="session")
def etcd1() -> Iterator[EtcdCluster]:
    with etcd_cluster(1) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def etcd3() -> Iterator[EtcdCluster]:
    with etcd_cluster(3) as cluster:
        yield cluster


def etcd_store(url: str, **kw: Any) -> Any:
    from meshgate.store.etcd import EtcdStore
    from meshgate.store.etcd_conn import parse_store_url

    return EtcdStore(parse_store_url(url), **kw)


@pytest.fixture(params=["sqlite", "etcd"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_store(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[MakeStore]:
    opened: list[Any] = []
    if backend == "etcd":
        cluster: EtcdCluster = request.getfixturevalue("etcd1")
        url = f"{cluster.store_url}/meshgate-test/{uuid.uuid4().hex[:12]}"

        def make(**kw: Any) -> Any:
            kw.pop("event_limit", None)
            opened.append(etcd_store(url, **kw))
            return opened[-1]
    else:

        def make(**kw: Any) -> Any:
            opened.append(SqliteStore(tmp_path / "store.db", **kw))
            return opened[-1]

    try:
        yield make
    finally:
        for s in reversed(opened):
            s.close()


@pytest.fixture
def store(make_store: MakeStore) -> ConfigStore:
    s: ConfigStore = make_store()
    return s
