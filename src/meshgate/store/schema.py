"""The SQLite schema of the config store and its version check.

Rules of this module:
- ``SCHEMA_VERSION`` names the layout this code writes. A database with a newer version is
  refused (an older meshgate must not scribble over a newer layout); an older one is
  brought forward by ``MIGRATIONS[v]`` (from v to v+1), each run in the same transaction.
- Creation is idempotent (``IF NOT EXISTS``) and runs under ``BEGIN IMMEDIATE``, so
  several processes opening a fresh database at once end with one schema.
- Revisions are unique per write, so ``history`` and ``events`` use the revision as key.
"""

from __future__ import annotations

import sqlite3

from meshgate.store.base import SchemaVersionError

SCHEMA_VERSION = 2

_CREATE = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO counters (name, value) VALUES ('revision', 0), ('compacted', 0);
-- The primary key's (grp, kind, namespace) prefix serves list() by group/kind/namespace.
CREATE TABLE IF NOT EXISTS objects (
    grp TEXT NOT NULL, kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
    body TEXT NOT NULL, resource_version INTEGER NOT NULL, generation INTEGER NOT NULL,
    PRIMARY KEY (grp, kind, namespace, name)
);
CREATE INDEX IF NOT EXISTS objects_by_namespace ON objects (namespace, grp, kind, name);
CREATE TABLE IF NOT EXISTS history (
    revision INTEGER PRIMARY KEY,
    grp TEXT NOT NULL, kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
    body TEXT NOT NULL, generation INTEGER NOT NULL, deleted INTEGER NOT NULL,
    created INTEGER
);
CREATE INDEX IF NOT EXISTS history_by_key ON history (grp, kind, namespace, name, revision);
CREATE TABLE IF NOT EXISTS events (
    revision INTEGER PRIMARY KEY, type TEXT NOT NULL,
    grp TEXT NOT NULL, kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
    body TEXT NOT NULL
);
"""

# history.created: 1 for the version that created its object, 0 for a later one, NULL
# (rows from version 1) unknown.
MIGRATIONS: dict[int, str] = {1: "ALTER TABLE history ADD COLUMN created INTEGER;"}


def ensure_schema(conn: sqlite3.Connection, path: str) -> None:
    """Create or migrate the schema; SchemaVersionError if the file is from a newer meshgate.

    ``conn`` must be in autocommit mode (``isolation_level=None``).
    """
    if _read_version(conn) == SCHEMA_VERSION:
        return  # the common case: one read, no write lock
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = _read_version(conn)
        if version is None:
            for statement in _statements(_CREATE):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
        elif version > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"{path} has store schema version {version}, but this meshgate understands "
                f"up to {SCHEMA_VERSION}: upgrade meshgate, or use another state directory"
            )
        else:
            for v in range(version, SCHEMA_VERSION):
                for statement in _statements(MIGRATIONS[v]):
                    conn.execute(statement)
            conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _read_version(conn: sqlite3.Connection) -> int | None:
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone()
    if exists is None:
        return None
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return None if row is None or row[0] is None else int(row[0])


def _statements(script: str) -> list[str]:
    """Split a script into statements: ``executescript`` would commit our transaction."""
    lines = [line for line in script.splitlines() if not line.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
