"""The embedded config store: one SQLite file in the state directory.

Rules of this module:
- Every write is one ``BEGIN IMMEDIATE`` transaction (the write lock is taken before we
  read the revision counter, so concurrent writers in other processes serialize), with
  bulk rows written by ``executemany``. A dry run does the same work and rolls back.
- WAL mode and a 5 s busy timeout let several processes (the control plane, the CLI)
  share the file; opening is one connect plus one schema read, cheap enough per command.
- One connection per store, guarded by a re-entrant lock, so threads (and asyncio's
  executor) may share a store. Watch callbacks run under that lock right after the commit,
  in commit order: they must be quick and must not wait on another thread that uses the
  store (hand work off, e.g. with ``loop.call_soon_threadsafe``). A callback may read.
- ``watch`` only sees commits made through this store object; other processes' commits
  are found by polling ``events_since``.
- Bodies are JSON text, written once per write and reused for the object, history and
  event rows. Callers must not mutate objects handed to them by ``apply`` or watchers.
- A body over ``MAX_OBJECT_BYTES`` (1.5 MiB, etcd's request limit) refuses its whole write
  (``ObjectTooLarge``, naming the object and its size) before anything is written.
- A write that finds the filesystem full (SQLITE_FULL) is rolled back whole and refused
  with ``StoreFull``, naming the store; what was stored before is intact.
- History is bounded per object in versions (``history_limit``) and in bytes
  (``history_bytes``): older versions go first; the newest version is always kept.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from meshgate.api.gcpause import paused_gc
from meshgate.api.meta import ResourceKey
from meshgate.store.base import (
    Change,
    Compacted,
    Event,
    EventType,
    Fence,
    StoredObject,
    WatchCallback,
)
from meshgate.store.canonical import (
    Current,
    key_of,
    now_rfc3339,
    plan_write,
    to_json,
    user_view,
    with_status,
)
from meshgate.store.schema import ensure_schema
from meshgate.validation.limits import MAX_OBJECT_BYTES, too_large

log = logging.getLogger(__name__)

# Keys per prefetch query: 4 parameters each, well under SQLite's 32766 variable limit.
_CHUNK = 500
_KEY_WHERE = "grp = ? AND kind = ? AND namespace = ? AND name = ?"
# Per key written since revision ?, the versions past the newest ? or past ? bytes in all
# (newest first; the newest is always kept).
_PRUNE_HISTORY = """
DELETE FROM history WHERE revision IN (
    SELECT revision FROM (
        SELECT revision, ROW_NUMBER() OVER newest AS rn, SUM(LENGTH(CAST(body AS BLOB)))
            OVER (newest ROWS UNBOUNDED PRECEDING) AS kept
        FROM history
        WHERE (grp, kind, namespace, name) IN (
            SELECT grp, kind, namespace, name FROM history WHERE revision > ?)
        WINDOW newest AS (PARTITION BY grp, kind, namespace, name ORDER BY revision DESC)
    ) WHERE rn > 1 AND (rn > ? OR kept > ?)
)
"""
# Whether a key written in this transaction (revision > ?) has versions from before it
# (revision <= ?): without any, and with one new version per key, nothing can need pruning.
_OLDER_HISTORY = """
SELECT EXISTS (
    SELECT 1 FROM history AS new JOIN history AS old
    ON old.grp = new.grp AND old.kind = new.kind AND old.namespace = new.namespace
    AND old.name = new.name AND old.revision <= ?
    WHERE new.revision > ?
)
"""


# The bytes of kept versions per object: a few versions of the largest object allowed.
HISTORY_BYTES = 4 * 1024 * 1024


class StoreFull(OSError):
    """A write refused because the store's filesystem is full (nothing was written)."""


class ObjectTooLarge(ValueError):
    """A write of an object larger than the store takes (nothing was written)."""


def _checked(body: str, where: str) -> str:
    # len(body) bounds the UTF-8 size from below and by a quarter from above: encode only
    # when it may matter.
    if len(body) * 4 > MAX_OBJECT_BYTES:
        problem = too_large(len(body.encode()))
        if problem is not None:
            raise ObjectTooLarge(f"{where}: {problem}")
    return body


def _new_uid() -> str:
    """A random (version 4) UUID as text; ``str(uuid.uuid4())`` costs three times as much."""
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40
    raw[8] = raw[8] & 0x3F | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class _Txn:
    """Work collected inside one transaction."""

    def __init__(self, revision: int) -> None:
        self.start = revision
        self.revision = revision
        self.changes: list[Change] = []
        self.events: list[Event] = []
        self.object_rows: list[tuple[Any, ...]] = []
        self.delete_rows: list[ResourceKey] = []
        self.history_rows: list[tuple[Any, ...]] = []
        self.event_rows: list[tuple[Any, ...]] = []
        self.pending: dict[ResourceKey, Current | None] = {}

    def record(self, key: ResourceKey, etype: EventType, obj: dict[str, Any], body: str) -> int:
        self.revision += 1
        self.event_rows.append((self.revision, etype, *key, body))
        self.events.append(Event(self.revision, etype, key, obj))
        return self.revision


class SqliteStore:
    """A ``ConfigStore`` in one SQLite file. Use as a context manager, or call ``close``."""

    def __init__(
        self,
        path: Path | str,
        *,
        history_limit: int = 10,
        history_bytes: int = HISTORY_BYTES,
        event_limit: int = 10_000,
    ) -> None:
        if history_limit < 1 or event_limit < 1 or history_bytes < 1:
            raise ValueError("history_limit, history_bytes and event_limit must be at least 1")
        self.path = str(path)
        self.history_limit = history_limit
        self.history_bytes = history_bytes
        self.event_limit = event_limit
        self._lock = threading.RLock()
        self._watchers: list[WatchCallback] = []
        self._conn = sqlite3.connect(
            self.path, timeout=5.0, isolation_level=None, check_same_thread=False
        )
        try:
            self._conn.execute("PRAGMA busy_timeout = 5000")
            self._conn.execute("PRAGMA journal_mode = WAL")
            # NORMAL is crash-safe in WAL mode; only the last commits may be lost on power loss.
            self._conn.execute("PRAGMA synchronous = NORMAL")
            # A bulk apply touches tens of MB of pages; the 2 MB default spills mid-transaction.
            self._conn.execute("PRAGMA cache_size = -65536")
            self._conn.execute("PRAGMA temp_store = MEMORY")
            ensure_schema(self._conn, self.path)
        except BaseException:
            self._conn.close()
            raise

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def fenced(self, fence: Fence | None) -> AbstractContextManager[None]:
        """One control plane per SQLite store, always its leader: nothing to fence."""
        return contextlib.nullcontext()

    # reads

    def get(self, key: ResourceKey) -> StoredObject | None:
        with self._lock:
            row = self._conn.execute(
                f"SELECT body, resource_version, generation FROM objects WHERE {_KEY_WHERE}",
                tuple(key),
            ).fetchone()
        if row is None:
            return None
        return StoredObject(key, json.loads(row[0]), row[1], row[2])

    def list(
        self, group: str | None = None, kind: str | None = None, namespace: str | None = None
    ) -> builtins.list[StoredObject]:
        where, args = [], []
        for column, value in (("grp", group), ("kind", kind), ("namespace", namespace)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        sql = "SELECT grp, kind, namespace, name, body, resource_version, generation FROM objects"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY grp, kind, namespace, name"
        with self._lock:
            rows = self._conn.execute(sql, args).fetchall()
        return [
            StoredObject(ResourceKey(g, k, ns, n), json.loads(body), rv, gen)
            for g, k, ns, n, body, rv, gen in rows
        ]

    def history(self, key: ResourceKey) -> builtins.list[StoredObject]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT revision, body, generation, deleted, created FROM history "
                f"WHERE {_KEY_WHERE} ORDER BY revision",
                tuple(key),
            ).fetchall()
        return [
            StoredObject(key, json.loads(b), rev, gen, bool(d), None if c is None else bool(c))
            for rev, b, gen, d, c in rows
        ]

    def revision(self) -> int:
        with self._lock:
            return self._counter("revision")

    def events_since(self, revision: int) -> builtins.list[Event]:
        with self._lock:
            # One read transaction, so the compaction mark and the rows agree.
            self._conn.execute("BEGIN")
            try:
                compacted = self._counter("compacted")
                if revision < compacted:
                    raise Compacted(revision, compacted)
                rows = self._conn.execute(
                    "SELECT revision, type, grp, kind, namespace, name, body FROM events "
                    "WHERE revision > ? ORDER BY revision",
                    (revision,),
                ).fetchall()
            finally:
                self._conn.execute("COMMIT")
        return [
            Event(rev, etype, ResourceKey(g, k, ns, n), json.loads(body))
            for rev, etype, g, k, ns, n, body in rows
        ]

    # writes

    def apply(
        self, objects: builtins.list[dict[str, Any]], *, dry_run: bool = False
    ) -> builtins.list[Change]:
        with paused_gc(len(objects)):
            keyed = [(key_of(obj, f"object {i}"), obj) for i, obj in enumerate(objects)]
            now = now_rfc3339()
            with self._transaction(dry_run) as txn:
                txn.pending.update(self._prefetch([key for key, _ in keyed]))
                for i, (key, obj) in enumerate(keyed):
                    self._apply_one(txn, key, obj, now, f"object {i} ({key})")
            return txn.changes

    def update_status(self, key: ResourceKey, status: dict[str, Any]) -> StoredObject:
        """Replace ``status``; a status equal to the stored one writes nothing."""
        with self._transaction(False) as txn:
            current = self._current(key)
            if current is None:
                raise KeyError(f"{key} not found")
            if current.object.get("status", {}) == status:
                # No write, no event: a controller re-reporting the same status must not
                # wake every watcher (and, through them, itself) again.
                rv = int(current.object["metadata"]["resourceVersion"])
                return StoredObject(key, current.object, rv, current.generation)
            new = with_status(current.object, status, revision=txn.revision + 1)
            body = _checked(to_json(new, f"status of {key}"), str(key))
            rev = txn.record(key, "MODIFIED", new, body)
            txn.object_rows.append((*key, body, rev, current.generation))
        return StoredObject(key, new, rev, current.generation)

    def delete(
        self, keys: builtins.list[ResourceKey], *, dry_run: bool = False, missing_ok: bool = False
    ) -> builtins.list[Change]:
        with paused_gc(len(keys)), self._transaction(dry_run) as txn:
            self._delete_in(txn, keys, missing_ok)
        return txn.changes

    def rollback(self, key: ResourceKey, revision: int) -> Change:
        with self._transaction(False) as txn:
            row = self._conn.execute(
                f"SELECT body, deleted FROM history WHERE {_KEY_WHERE} AND revision = ?",
                (*key, revision),
            ).fetchone()
            if row is None:
                raise KeyError(f"{key} has no kept version at revision {revision}")
            if row[1]:
                self._delete_in(txn, [key], missing_ok=True)
                if not txn.changes:
                    txn.changes.append(Change(key, "unchanged", {}))
            else:
                where = f"{key} at revision {revision}"
                self._apply_one(txn, key, user_view(json.loads(row[0])), now_rfc3339(), where)
        return txn.changes[0]

    def watch(self, callback: WatchCallback) -> Callable[[], None]:
        with self._lock:
            self._watchers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._watchers:
                    self._watchers.remove(callback)

        return unsubscribe

    # inside a transaction

    def _apply_one(
        self, txn: _Txn, key: ResourceKey, obj: dict[str, Any], now: str, where: str
    ) -> None:
        if key in txn.pending:
            current = txn.pending[key]
        else:
            current = txn.pending[key] = self._current(key)
        uid = _new_uid() if current is None else ""
        plan = plan_write(current, obj, revision=txn.revision + 1, now=now, uid=uid)
        if plan.action == "unchanged":
            txn.changes.append(Change(key, "unchanged", plan.object))
            return
        body = _checked(to_json(plan.object, where), str(key))
        rev = txn.record(key, "ADDED" if current is None else "MODIFIED", plan.object, body)
        txn.object_rows.append((*key, body, rev, plan.generation))
        txn.history_rows.append((rev, *key, body, plan.generation, 0, int(current is None)))
        txn.pending[key] = Current(plan.object, plan.generation)
        txn.changes.append(Change(key, plan.action, plan.object))

    def _delete_in(self, txn: _Txn, keys: builtins.list[ResourceKey], missing_ok: bool) -> None:
        # One chunked lookup for every key, as apply's prefetch: a query per key was most
        # of the cost of a bulk delete.
        rows = self._rows(builtins.list(dict.fromkeys(keys)))
        missing = [str(key) for key, row in rows.items() if row is None]
        if missing and not missing_ok:
            raise KeyError(f"not found: {', '.join(missing)}")
        for key, row in rows.items():
            if row is None:
                continue
            body, generation = row
            obj = json.loads(body)
            rev = txn.record(key, "DELETED", obj, body)
            txn.delete_rows.append(key)
            txn.history_rows.append((rev, *key, body, generation, 1, 0))
            txn.changes.append(Change(key, "deleted", obj))

    def _prefetch(self, keys: builtins.list[ResourceKey]) -> dict[ResourceKey, Current | None]:
        """The stored state of many keys (one query per key is the cost that dominates a
        bulk apply)."""
        return {
            key: None if row is None else Current(json.loads(row[0]), row[1])
            for key, row in self._rows(keys).items()
        }

    def _rows(self, keys: builtins.list[ResourceKey]) -> dict[ResourceKey, tuple[str, int] | None]:
        """The stored body and generation of many keys (None if absent), in ``keys``'
        order, a chunk of keys per query."""
        found: dict[ResourceKey, tuple[str, int] | None] = dict.fromkeys(keys)
        unique = builtins.list(found)
        for start in range(0, len(unique), _CHUNK):
            chunk = unique[start : start + _CHUNK]
            values = ",".join(["(?,?,?,?)"] * len(chunk))
            # A join, not a row-value IN: SQLite plans IN (VALUES ...) as a table scan.
            rows = self._conn.execute(
                "SELECT o.grp, o.kind, o.namespace, o.name, o.body, o.generation "
                f"FROM (VALUES {values}) AS v JOIN objects AS o ON o.grp = v.column1 "
                "AND o.kind = v.column2 AND o.namespace = v.column3 AND o.name = v.column4",
                [part for key in chunk for part in key],
            ).fetchall()
            for g, k, ns, n, body, generation in rows:
                found[ResourceKey(g, k, ns, n)] = (body, generation)
        return found

    def _current(self, key: ResourceKey) -> Current | None:
        row = self._conn.execute(
            f"SELECT body, generation FROM objects WHERE {_KEY_WHERE}", tuple(key)
        ).fetchone()
        return None if row is None else Current(json.loads(row[0]), row[1])

    def _counter(self, name: str) -> int:
        row = self._conn.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        return int(row[0])

    @contextmanager
    def _transaction(self, dry_run: bool) -> Iterator[_Txn]:
        """Run the body in one write transaction, flush its rows, commit, then notify."""
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                txn = _Txn(self._counter("revision"))
                yield txn
                self._flush(txn)
                if dry_run:
                    conn.execute("ROLLBACK")
                    return
                conn.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                self._rollback()
                if exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_FULL:
                    raise StoreFull(
                        f"no space left for the store {self.path} (its filesystem is full): "
                        "nothing was written; free some space and try again"
                    ) from None
                raise
            except BaseException:
                self._rollback()
                raise
            if txn.events:
                self._notify(txn.events)

    def _rollback(self) -> None:
        # SQLite may have rolled back already (on SQLITE_FULL it can).
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    def _flush(self, txn: _Txn) -> None:
        if txn.revision == txn.start:
            return
        conn = self._conn
        # One call either writes or deletes, so the order of these two bulk steps is free.
        conn.executemany(f"DELETE FROM objects WHERE {_KEY_WHERE}", txn.delete_rows)
        conn.executemany(
            "INSERT INTO objects (grp, kind, namespace, name, body, resource_version, generation) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (grp, kind, namespace, name) DO UPDATE SET "
            "body = excluded.body, resource_version = excluded.resource_version, "
            "generation = excluded.generation",
            txn.object_rows,
        )
        conn.executemany(
            "INSERT INTO history (revision, grp, kind, namespace, name, body, generation, "
            "deleted, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            txn.history_rows,
        )
        horizon = txn.revision - self.event_limit
        # Events older than the kept window would be compacted at once: never write them.
        events = txn.event_rows if txn.start >= horizon else txn.event_rows[horizon - txn.start :]
        conn.executemany(
            "INSERT INTO events (revision, type, grp, kind, namespace, name, body) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            events,
        )
        if txn.history_rows and self._may_overflow_history(txn):
            conn.execute(_PRUNE_HISTORY, (txn.start, self.history_limit, self.history_bytes))
        conn.execute("UPDATE counters SET value = ? WHERE name = 'revision'", (txn.revision,))
        if horizon > self._counter("compacted"):
            conn.execute("DELETE FROM events WHERE revision <= ?", (horizon,))
            conn.execute("UPDATE counters SET value = ? WHERE name = 'compacted'", (horizon,))

    def _may_overflow_history(self, txn: _Txn) -> bool:
        """False when pruning provably has nothing to do: a bulk create of new keys (the
        window query over every written key is then most of the cost of a flush)."""
        keys = {row[1:5] for row in txn.history_rows}
        if len(keys) != len(txn.history_rows):
            return True  # a key written twice in one call
        row = self._conn.execute(_OLDER_HISTORY, (txn.start, txn.start)).fetchone()
        return bool(row[0])

    def _notify(self, events: builtins.list[Event]) -> None:
        for callback in builtins.list(self._watchers):
            try:
                callback(events)
            except Exception:
                # The commit stands; one broken subscriber must not starve the others.
                log.exception("store watcher %r failed", callback)
