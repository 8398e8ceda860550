"""The config store: revisioned, atomic, watchable storage of canonical wire dicts.

Rules: callers depend on the ``ConfigStore`` protocol and get a backend from
``open_store``; nothing outside this package names a backend class except to configure it.
The backend chosen for a state directory (``meshgate up --store``) is remembered in its
``store.json`` (0600: it may hold an etcd password), so every later command and restart
opens the same store. Without that file the store is SQLite's ``store.db``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from meshgate.store.base import (
    Change,
    Compacted,
    ConfigStore,
    Event,
    Fence,
    Fenced,
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
    "Fence",
    "Fenced",
    "SchemaVersionError",
    "SqliteStore",
    "StoreError",
    "StoredObject",
    "open_store",
]


STORE_CONFIG = "store.json"
# The etcd options a store URL may come with, named as etcdctl names them.
ETCD_OPTIONS = ("cacert", "cert", "key", "user", "password")


def store_choice(state_dir: Path) -> dict[str, str]:
    """What ``state_dir`` remembers: ``{"url": "sqlite"}`` or an etcd URL and its options."""
    path = state_dir / STORE_CONFIG
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {"url": "sqlite"}
    except (OSError, ValueError) as exc:
        raise StoreError(f"{path}: unreadable store choice ({exc}); fix or remove it") from None
    if not isinstance(data, dict) or not isinstance(data.get("url"), str):
        raise StoreError(f"{path}: expected a JSON object with a url string")
    return {k: v for k, v in data.items() if isinstance(v, str)}


def open_store(state_dir: Path, url: str | None = None, **etcd_options: str | None) -> ConfigStore:
    """The store of a state directory (created 0700 if missing).

    ``url`` None opens the store the directory remembers (SQLite's ``state_dir/store.db``
    unless ``up --store`` chose another). ``"sqlite"`` or ``etcd://HOST:PORT[,...][/PREFIX]``
    (with ``etcd_options``: cacert, cert, key, user, password) opens that store and
    remembers the choice. ValueError for a malformed URL or option, ``StoreUnavailable``
    (a ``StoreError``) naming the URL when etcd does not answer.
    """
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if url is None:
        choice = store_choice(state_dir)
    else:
        unknown = set(etcd_options) - set(ETCD_OPTIONS)
        if unknown:
            raise TypeError(f"unknown etcd options: {', '.join(sorted(unknown))}")
        choice = {"url": url, **{k: v for k, v in etcd_options.items() if v}}
    if choice["url"] in ("sqlite", ""):
        store: ConfigStore = SqliteStore(state_dir / "store.db")
    elif choice["url"].startswith("etcd://"):
        from meshgate.store.etcd import EtcdStore
        from meshgate.store.etcd_conn import parse_store_url

        options = {k: choice.get(k) for k in ETCD_OPTIONS}
        store = EtcdStore(parse_store_url(choice["url"], **options))
    else:
        raise ValueError(f"--store {choice['url']!r}: expected sqlite or etcd://HOST:PORT[,...]")
    if url is not None:
        _remember(state_dir, choice)
    return store


def _remember(state_dir: Path, choice: dict[str, str]) -> None:
    path = state_dir / STORE_CONFIG
    if choice == {"url": "sqlite"} and not path.exists():
        return
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(choice, fh, indent=2)
    os.replace(tmp, path)
