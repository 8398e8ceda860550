"""The config store: revisioned, atomic, watchable storage of canonical wire dicts.

Rules: callers depend on the ``ConfigStore`` protocol and get a backend from
``open_store``; nothing outside this package names a backend class except to configure it.
"""

from __future__ import annotations

from pathlib import Path

from meshgate.store.base import (
    Change,
    Compacted,
    ConfigStore,
    Event,
    SchemaVersionError,
    StoredObject,
    StoreError,
)
from meshgate.store.sqlite import SqliteStore

__all__ = [
    "Change",
    "Compacted",
    "ConfigStore",
    "Event",
    "SchemaVersionError",
    "SqliteStore",
    "StoreError",
    "StoredObject",
    "open_store",
]


def open_store(state_dir: Path) -> ConfigStore:
    """The store of a state directory (created 0700 if missing): ``state_dir/store.db``."""
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    return SqliteStore(state_dir / "store.db")
