"""The mesh-wide access log: a bounded SQLite table in ``<state dir>/telemetry/``.

Rules of this module:
- One row per request (``Entry.key`` is unique): the first source to bring it inserts it;
  a proxy's own JSON line, when it arrives after the gRPC entry, replaces that entry's
  fields (it is the authoritative rendering) but keeps its row id, so a follower that
  already printed the row never prints it again.
- Bounded by age (``max_age`` seconds after it was stored) and by size (``max_bytes`` of
  used database pages): ``prune`` removes the oldest rows first. Removed rows are counted.
- One writer (the sink's thread) owns the writing connection; readers open their own
  (WAL mode lets them read while it writes).
- Query filters are parameters, never text spliced into SQL.
- Rows have a ``source``: ``als`` or ``file`` when this control plane received them,
  ``replica`` when pulled from another replica's store (``peers.py``). ``local_rows``
  hands out only the first two, so a pulled row is never pulled on from here.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshgate.telemetry.entries import Entry

DB_FILE = "access-log.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  key TEXT NOT NULL UNIQUE,
  stored REAL NOT NULL,
  start_ms INTEGER NOT NULL,
  namespace TEXT NOT NULL,
  pod TEXT NOT NULL,
  workload TEXT NOT NULL,
  reporter TEXT NOT NULL,
  host TEXT NOT NULL,
  response_code INTEGER,
  source TEXT NOT NULL,
  body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_workload ON entries (namespace, workload, start_ms);
CREATE INDEX IF NOT EXISTS entries_stored ON entries (stored);
CREATE INDEX IF NOT EXISTS entries_start ON entries (start_ms);
CREATE TABLE IF NOT EXISTS offsets (path TEXT PRIMARY KEY, inode INTEGER, offset INTEGER);
"""


@dataclass(frozen=True)
class Query:
    namespace: str | None = None
    workload: str | None = None
    reporter: str | None = None
    pod: str | None = None
    host: str | None = None
    status: str | None = None  # "5xx", "403", ...
    since_ms: int | None = None
    after_id: int = 0
    tail: int | None = None


def db_path(state_dir: Path) -> Path:
    return state_dir / "telemetry" / DB_FILE


def connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=10.0, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(_SCHEMA)
    return conn


class AccessLogStore:
    """The writer's side: add entries, prune, keep the file tailers' offsets.

    Offsets are also kept in memory (this is their only writer), so the backfill's check of
    every proxy's log file each second asks SQLite nothing when no file grew."""

    def __init__(self, path: Path, *, max_bytes: int, max_age: float) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.max_age = max_age
        self._conn = connect(path)
        self._offsets: dict[str, tuple[int, int]] = {}

    def close(self) -> None:
        self._conn.close()

    def add(self, entries: Iterable[Entry], now: float | None = None) -> list[Entry]:
        """Store ``entries`` in one transaction; returns those that were new (not already
        stored from the other source), which are the ones metrics count."""
        now = time.time() if now is None else now
        new: list[Entry] = []
        with self._conn:
            for e in entries:
                body = json.dumps(e.to_json(), separators=(",", ":"))
                cur = self._conn.execute(
                    "INSERT OR IGNORE INTO entries (key, stored, start_ms, namespace, pod,"
                    " workload, reporter, host, response_code, source, body)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        e.key, now, e.start_ms, e.reporter.namespace, e.reporter.pod,
                        e.reporter.workload, e.reporter.kind, e.host,
                        _int(e.fields.get("response_code")), e.source, body,
                    ),
                )  # fmt: skip
                if cur.rowcount == 1:
                    new.append(e)
                elif e.source == "file":
                    self._conn.execute(
                        "UPDATE entries SET body = ?, source = 'file' WHERE key = ?"
                        " AND source != 'file'",
                        (body, e.key),
                    )
        return new

    def prune(self, now: float | None = None) -> int:
        """Drop rows older than ``max_age``, then the oldest until under ``max_bytes``."""
        now = time.time() if now is None else now
        removed = 0
        with self._conn:
            cur = self._conn.execute("DELETE FROM entries WHERE stored < ?", (now - self.max_age,))
            removed += max(cur.rowcount, 0)
            while self.used_bytes() > self.max_bytes:
                count = self._conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
                if not count:
                    break
                cur = self._conn.execute(
                    "DELETE FROM entries WHERE id IN (SELECT id FROM entries ORDER BY id LIMIT ?)",
                    (max(1, count // 10),),
                )
                removed += max(cur.rowcount, 0)
        return removed

    def used_bytes(self) -> int:
        pages = self._conn.execute("PRAGMA page_count").fetchone()[0]
        free = self._conn.execute("PRAGMA freelist_count").fetchone()[0]
        size = self._conn.execute("PRAGMA page_size").fetchone()[0]
        return int((pages - free) * size)

    def offset(self, path: str) -> tuple[int, int]:
        known = self._offsets.get(path)
        if known is not None:
            return known
        row = self._conn.execute(
            "SELECT inode, offset FROM offsets WHERE path = ?", (path,)
        ).fetchone()
        found = (int(row[0]), int(row[1])) if row else (0, 0)
        self._offsets[path] = found
        return found

    def set_offset(self, path: str, inode: int, offset: int) -> None:
        with self._conn:
            self._conn.execute(
                "INSERT OR REPLACE INTO offsets (path, inode, offset) VALUES (?,?,?)",
                (path, inode, offset),
            )
        self._offsets[path] = (inode, offset)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) else None


def query(conn: sqlite3.Connection, q: Query) -> list[tuple[int, dict[str, Any]]]:
    """(row id, entry) in the order requests started; ``tail`` keeps the last N."""
    where: list[str] = ["id > ?"]
    args: list[Any] = [q.after_id]
    for column, value in (
        ("namespace", q.namespace),
        ("workload", q.workload),
        ("reporter", q.reporter),
        ("pod", q.pod),
        ("host", q.host),
    ):
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    if q.since_ms is not None:
        where.append("start_ms >= ?")
        args.append(q.since_ms)
    if q.status:
        lo, hi = status_range(q.status)
        where.append("response_code BETWEEN ? AND ?")
        args.extend((lo, hi))
    sql = f"SELECT id, body FROM entries WHERE {' AND '.join(where)} ORDER BY start_ms, id"
    rows = [(int(i), json.loads(b)) for i, b in conn.execute(sql, args)]
    if q.tail is not None and q.tail >= 0:
        rows = rows[-q.tail :] if q.tail else []
    return rows


LOCAL_SOURCES = ("als", "file")


def local_rows(conn: sqlite3.Connection, after: int, limit: int) -> tuple[list[Any], int]:
    """The rows this control plane received itself (not pulled from a replica), after row
    id ``after``, oldest first, at most ``limit``; and the store's last row id (a replica
    whose cursor is past it is reading a store that started again: it reads from 0)."""
    rows = conn.execute(
        "SELECT id, workload, body FROM entries WHERE id > ? AND source IN (?, ?)"
        " ORDER BY id LIMIT ?",
        (after, *LOCAL_SOURCES, max(1, limit)),
    ).fetchall()
    last = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'entries'").fetchone()
    return [[int(i), w, json.loads(b)] for i, w, b in rows], int(last[0]) if last else 0


def status_range(text: str) -> tuple[int, int]:
    """``5xx`` -> (500, 599); ``403`` -> (403, 403); ValueError otherwise."""
    t = text.strip().lower()
    if len(t) == 3 and t[0].isdigit() and t[1:] == "xx":
        return int(t[0]) * 100, int(t[0]) * 100 + 99
    if len(t) == 3 and t.isdigit():
        return int(t), int(t)
    raise ValueError(f"status {text!r}: want a code such as 403, or a class such as 5xx")
