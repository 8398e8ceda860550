"""What only the SQLite store does: one revision per written object (the exact numbers),
its bounded events table, its schema, bulk lookups. The contract both backends keep is
tested in test_store_contract.py."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from meshgate.api.meta import ResourceKey
from meshgate.store import Compacted, SchemaVersionError, SqliteStore, open_store
from meshgate.store.base import Event
from meshgate.store.schema import SCHEMA_VERSION

GROUP = "networking.istio.io"


def se(name: str, host: str = "aliyun.com", namespace: str = "default") -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "ServiceEntry",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"hosts": [host], "location": "MESH_EXTERNAL"},
    }


def key(name: str, namespace: str = "default") -> ResourceKey:
    return ResourceKey(GROUP, "ServiceEntry", namespace, name)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "store.db")
    try:
        yield s
    finally:
        s.close()


def test_create_update_unchanged_delete(store: SqliteStore) -> None:
    [c] = store.apply([se("a")])
    assert (c.key, c.action) == (key("a"), "created")
    meta = c.object["metadata"]
    assert meta["resourceVersion"] == "1" and meta["generation"] == 1
    assert len(meta["uid"]) == 36 and meta["creationTimestamp"].endswith("Z")

    got = store.get(key("a"))
    assert got is not None and got.object == c.object
    assert (got.resource_version, got.generation) == (1, 1)

    # What `get -o yaml` prints, applied back, changes nothing and takes no revision.
    assert [x.action for x in store.apply([got.object])] == ["unchanged"]
    assert store.revision() == 1

    [c] = store.apply([se("a", host="www.aliyun.com")])
    assert c.action == "configured"
    got = store.get(key("a"))
    assert got is not None and (got.resource_version, got.generation) == (2, 2)
    assert got.object["metadata"]["uid"] == meta["uid"]
    assert got.object["metadata"]["creationTimestamp"] == meta["creationTimestamp"]

    [d] = store.delete([key("a")])
    assert (d.action, d.key) == ("deleted", key("a"))
    assert store.get(key("a")) is None and store.list() == []
    assert store.revision() == 3


def test_update_status(store: SqliteStore) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"}}
    store.apply([pod])
    pkey = ResourceKey("", "Pod", "default", "p")
    updated = store.update_status(pkey, {"podIP": "10.1.0.5", "phase": "Running"})
    assert (updated.resource_version, updated.generation) == (2, 1)
    assert updated.object["metadata"]["resourceVersion"] == "2"
    assert store.get(pkey) == updated
    # The same status again is not a write: no revision, no event.
    assert store.update_status(pkey, {"phase": "Running", "podIP": "10.1.0.5"}) == updated
    assert store.revision() == 2
    # Re-applying the spec keeps the controller's status; history has only the apply.
    assert store.apply([pod])[0].action == "unchanged"
    got = store.get(pkey)
    assert got is not None and got.object["status"]["podIP"] == "10.1.0.5"
    assert [h.resource_version for h in store.history(pkey)] == [1]
    with pytest.raises(KeyError):
        store.update_status(ResourceKey("", "Pod", "default", "nope"), {})


def test_history_keeps_last_n_including_deletions(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "h.db", history_limit=3) as s:
        for i in range(5):
            s.apply([se("a", host=f"h{i}.com")])
        s.apply([se("b")])
        s.delete([key("a")])
        hist = s.history(key("a"))
        assert [h.resource_version for h in hist] == [4, 5, 7]
        assert [h.deleted for h in hist] == [False, False, True]
        assert hist[0].object["spec"]["hosts"] == ["h3.com"]
        assert len(s.history(key("b"))) == 1


def test_history_is_pruned_in_one_call_and_after_recreation(tmp_path: Path) -> None:
    # The pruning step is skipped only when no written key can exceed the limit: these
    # are the two ways a single apply can still overflow it.
    with SqliteStore(tmp_path / "h.db", history_limit=2) as s:
        s.apply([se("a", host=f"h{i}.com") for i in range(4)])
        assert [h.object["spec"]["hosts"] for h in s.history(key("a"))] == [["h2.com"], ["h3.com"]]
        s.delete([key("a")])
        # "a" is new to the objects table but still has history: a bulk create prunes it.
        s.apply([se("a", host="again.com"), *[se(f"n{i}") for i in range(5)]])
        hist = s.history(key("a"))
        assert [h.deleted for h in hist] == [True, False]
        assert hist[-1].object["spec"]["hosts"] == ["again.com"]
        assert all(len(s.history(key(f"n{i}"))) == 1 for i in range(5))


def test_rollback(store: SqliteStore) -> None:
    store.apply([se("a", host="one.com")])
    store.apply([se("a", host="two.com")])
    change = store.rollback(key("a"), 1)
    assert change.action == "configured"
    got = store.get(key("a"))
    assert got is not None and got.object["spec"]["hosts"] == ["one.com"]
    assert (got.resource_version, got.generation) == (3, 3)
    assert store.rollback(key("a"), 3).action == "unchanged"

    store.delete([key("a")])
    assert store.rollback(key("a"), 3).action == "created"  # undo the delete
    with pytest.raises(KeyError):
        store.rollback(key("a"), 999)


def test_events_and_watch(store: SqliteStore) -> None:
    heard: list[list[Event]] = []
    unsubscribe = store.watch(heard.append)
    store.apply([se("a"), se("b")])
    store.apply([se("a", host="x"), se("b")])
    store.delete([key("a"), key("b")])
    unsubscribe()
    store.apply([se("c")])

    assert [[(e.revision, e.type, e.key.name) for e in batch] for batch in heard] == [
        [(1, "ADDED", "a"), (2, "ADDED", "b")],
        [(3, "MODIFIED", "a")],
        [(4, "DELETED", "a"), (5, "DELETED", "b")],
    ]
    polled = store.events_since(2)
    assert [(e.revision, e.type, e.key.name) for e in polled] == [
        (3, "MODIFIED", "a"),
        (4, "DELETED", "a"),
        (5, "DELETED", "b"),
        (6, "ADDED", "c"),
    ]
    assert polled[0].object["spec"]["hosts"] == ["x"]
    assert store.events_since(6) == [] and store.events_since(100) == []


def test_events_are_bounded_and_compaction_is_reported(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "e.db", event_limit=5) as s:
        s.apply([se(f"n{i}") for i in range(8)])
        assert [e.revision for e in s.events_since(3)] == [4, 5, 6, 7, 8]
        with pytest.raises(Compacted) as info:
            s.events_since(2)
        assert info.value.compacted == 3
        heard: list[int] = []
        s.watch(lambda events: heard.extend(e.revision for e in events))
        s.apply([se(f"m{i}") for i in range(3)])
        assert heard == [9, 10, 11]  # watchers hear every write, kept or not
        assert [e.revision for e in s.events_since(6)] == [7, 8, 9, 10, 11]
        with pytest.raises(Compacted):
            s.events_since(5)
        s.apply([se(f"k{i}") for i in range(12)])
        assert [e.revision for e in s.events_since(18)] == [19, 20, 21, 22, 23]
        assert [e.object["metadata"]["name"] for e in s.events_since(18)][-1] == "k11"


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    SqliteStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    conn.close()
    with pytest.raises(SchemaVersionError, match="upgrade meshgate"):
        SqliteStore(path)


def test_reopen_keeps_data_and_revision(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "r.db") as s:
        s.apply([se("a"), se("b")])
    with SqliteStore(tmp_path / "r.db") as s:
        assert s.revision() == 2 and len(s.list()) == 2
        assert s.apply([se("c")])[0].object["metadata"]["resourceVersion"] == "3"


def test_open_store_creates_private_state_dir(tmp_path: Path) -> None:
    state = tmp_path / "state" / "mesh"
    store = open_store(state)
    try:
        assert (state / "store.db").exists()
        assert stat.S_IMODE(os.stat(state).st_mode) == 0o700
        assert store.apply([se("a")])[0].action == "created"
    finally:
        store.close()


def test_history_across_delete_and_recreate_has_one_entry_per_write(store: SqliteStore) -> None:
    store.apply([se("a", host="one.com")])
    store.apply([se("a", host="two.com")])
    store.delete([key("a")])
    store.apply([se("a", host="two.com")])
    hist = store.history(key("a"))
    # Each write is its own revision; the deletion's object is the version it removed.
    assert [(h.resource_version, h.generation, h.deleted) for h in hist] == [
        (1, 1, False),
        (2, 2, False),
        (3, 2, True),
        (4, 1, False),
    ]
    assert hist[2].object["metadata"]["resourceVersion"] == "2"
    assert hist[3].object["metadata"]["uid"] != hist[0].object["metadata"]["uid"]
    # Rolling back to the version before the delete writes it again as a new revision.
    assert store.rollback(key("a"), 1).action == "configured"
    assert [h.resource_version for h in store.history(key("a"))][-1] == 5
    # Rolling back to the deletion deletes; doing it again changes nothing.
    assert store.rollback(key("a"), 3).action == "deleted"
    assert store.get(key("a")) is None
    assert store.rollback(key("a"), 3).action == "unchanged"


def test_bulk_delete_across_lookup_chunks_keeps_order_and_skips_missing(
    store: SqliteStore,
) -> None:
    # More keys than one lookup query takes, with absent keys mixed in.
    names = [f"se-{i:04d}" for i in range(1200)]
    store.apply([se(n, host=f"{n}.example.com") for n in names])
    wanted = [key(n) for n in reversed(names)]
    wanted.insert(600, key("ghost"))
    start = store.revision()
    changes = store.delete(wanted, missing_ok=True)
    assert [c.key.name for c in changes] == list(reversed(names))
    assert all(c.action == "deleted" for c in changes)
    assert store.list() == []
    # One revision per deleted object, all committed in one transaction (one event batch).
    assert store.revision() == start + len(names)
    events = store.events_since(start)
    assert [e.key.name for e in events] == list(reversed(names))
    assert {e.type for e in events} == {"DELETED"}
    assert store.history(key("se-0007"))[-1].deleted


def test_bulk_delete_of_a_missing_key_changes_nothing(store: SqliteStore) -> None:
    names = [f"se-{i:04d}" for i in range(700)]
    store.apply([se(n, host=f"{n}.example.com") for n in names])
    start = store.revision()
    with pytest.raises(KeyError, match="ghost"):
        store.delete([*map(key, names), key("ghost")])
    assert store.revision() == start
    assert len(store.list()) == len(names)
