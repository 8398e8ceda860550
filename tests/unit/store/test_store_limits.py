"""The store's limits: one object's size, history in bytes, a full filesystem."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from meshgate.api.meta import ResourceKey
from meshgate.store import SqliteStore
from meshgate.store.sqlite import ObjectTooLarge

GROUP = "networking.istio.io"


def se(name: str, hosts: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "ServiceEntry",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"hosts": hosts, "location": "MESH_EXTERNAL"},
    }


def key(name: str) -> ResourceKey:
    return ResourceKey(GROUP, "ServiceEntry", "default", name)


def snapshot(s: SqliteStore) -> tuple[int, list[dict[str, Any]]]:
    return s.revision(), [o.object for o in s.list()]


def test_an_object_over_the_limit_is_refused_whole(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "s.db") as s:
        s.apply([se("small", ["a.example.com"])])
        before = snapshot(s)
        big = se("big", [f"h{i}.example.com" for i in range(120_000)])  # ~2 MiB
        with pytest.raises(ObjectTooLarge) as err:
            s.apply([se("other", ["b.example.com"]), big])
        msg = str(err.value)
        assert msg.startswith("ServiceEntry default/big: object too large: ")
        assert "MiB" in msg and "at most 1572864 bytes (1.5 MiB)" in msg
        assert snapshot(s) == before  # the small object of the same call was not written


def test_history_is_bounded_in_bytes(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "s.db", history_limit=10, history_bytes=30_000) as s:
        for i in range(6):
            s.apply([se("a", [f"v{i}-{j}.example.com" for j in range(500)])])  # ~11 kB each
        kept = s.history(key("a"))
        assert 1 < len(kept) < 6
        assert kept[-1].object["spec"]["hosts"][0] == "v5-0.example.com"  # newest kept
        # A version larger than the whole budget is still kept alone (the current one).
    with SqliteStore(tmp_path / "s.db", history_limit=10, history_bytes=100) as s:
        s.apply([se("a", ["last.example.com"] * 1 + ["x.example.com"] * 50)])
        assert len(s.history(key("a"))) == 1


def test_history_records_creations_and_a_version_1_store_is_migrated(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "s.db"
    with SqliteStore(path) as s:
        s.apply([se("a", ["one.example.com"])])
    conn = sqlite3.connect(path)  # back to the layout of schema version 1
    conn.execute("ALTER TABLE history DROP COLUMN created")
    conn.execute("UPDATE schema_version SET version = 1")
    conn.commit()
    conn.close()
    with SqliteStore(path) as s:
        s.apply([se("a", ["two.example.com"])])
        s.delete([key("a")])
        s.apply([se("a", ["three.example.com"])])
        assert [(h.created, h.deleted) for h in s.history(key("a"))] == [
            (None, False),  # written before the store recorded it
            (False, False),
            (False, True),
            (True, False),
        ]


def test_a_full_filesystem_refuses_the_write_and_keeps_what_was_stored(tmp_path: Path) -> None:
    from meshgate.store.sqlite import StoreFull

    with SqliteStore(tmp_path / "s.db") as s:
        s.apply([se("a", ["a.example.com"])])
        before = snapshot(s)
        pages = s._conn.execute("PRAGMA page_count").fetchone()[0]
        # SQLite's own page limit answers SQLITE_FULL as a full disk does.
        s._conn.execute(f"PRAGMA max_page_count = {pages}")
        many = [se(f"b{i}", [f"h{j}.b{i}.example.com" for j in range(200)]) for i in range(20)]
        with pytest.raises(StoreFull) as err:
            s.apply(many)
        assert "filesystem is full" in str(err.value) and "nothing was written" in str(err.value)
        assert snapshot(s) == before
        s._conn.execute("PRAGMA max_page_count = 1073741823")  # space freed
        assert snapshot(s) == before
        assert len(s.apply(many)) == 20
