"""The config store contract: what every backend (SQLite, etcd) provides.

Rules of this module:
- The store is generic: it holds canonical wire dicts (``Resource.to_wire()`` output),
  keyed by ``ResourceKey``; it never imports the typed models.
- The store owns ``metadata.uid``, ``metadata.resourceVersion``, ``metadata.generation`` and
  ``metadata.creationTimestamp``; values supplied by callers are ignored. ``status`` is
  written only through ``update_status``; ``apply`` keeps the stored status.
- Revisions are global and only grow: every commit's revisions are above every earlier
  commit's. A resource's ``resourceVersion`` is the revision of its last write, as a
  string. SQLite gives each written object its own revision; etcd gives every object of
  one call the revision of its one transaction. Callers may rely only on what both do:
  a later commit has higher revisions, and ``events_since(r)`` returns exactly the events
  of commits after ``r``.
- ``apply`` and ``delete`` are atomic: every object or none. Watchers hear about a
  commit after it is durable, all events of one call in one batch, in revision order
  (SQLite: commits through the same store object; etcd: every commit on the etcd prefix,
  by any process). A write returns after its watchers were handed its batch.
- Fencing: inside ``fenced(fence)``, the writes made by that thread commit only while the
  fence's key is held under its lease (etcd: one more compare in the same transaction);
  otherwise they raise ``Fenced`` and write nothing. A leader's controllers write so:
  a pass that outlives its leadership cannot write over the new leader's. SQLite has one
  control plane per store, always the leader: there it changes nothing.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from meshgate.api.meta import ResourceKey

Action = Literal["created", "configured", "unchanged", "deleted"]
EventType = Literal["ADDED", "MODIFIED", "DELETED"]


@dataclass(frozen=True, slots=True)
class StoredObject:
    """One version of a resource. ``deleted`` marks a history entry recording a deletion;
    ``created`` one that created its object (None: not known, from an older store)."""

    key: ResourceKey
    object: dict[str, Any]
    resource_version: int
    generation: int
    deleted: bool = False
    created: bool | None = None


@dataclass(frozen=True, slots=True)
class Change:
    """What ``apply``/``delete``/``rollback`` did (or would do, on a dry run) to one key."""

    key: ResourceKey
    action: Action
    object: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Event:
    """One committed write; ``object`` is the state after it (the last state, if deleted)."""

    revision: int
    type: EventType
    key: ResourceKey
    object: dict[str, Any]


WatchCallback = Callable[[builtins.list[Event]], None]


@dataclass(frozen=True, slots=True)
class Fence:
    """Writes commit only while ``key`` is held under ``lease`` (an etcd lease id)."""

    key: bytes
    lease: int


class StoreError(Exception):
    """Base for store failures that are not caller mistakes (ValueError/KeyError)."""


class SchemaVersionError(StoreError):
    """The database was written by a newer meshgate than this one."""


class Fenced(StoreError):
    """A fenced write found its fence's key gone or held by another lease: nothing written."""


class Compacted(StoreError):
    """The events asked for were dropped (SQLite's bounded events table, etcd's compaction):
    list again, then poll from the listing's revision."""

    def __init__(self, requested: int, compacted: int) -> None:
        super().__init__(
            f"events after revision {requested} are no longer kept (compacted up to "
            f"revision {compacted}); list the store again and poll from its revision"
        )
        self.requested = requested
        self.compacted = compacted


class ConfigStore(Protocol):
    """A transactional, revisioned, watchable store of wire dicts."""

    def get(self, key: ResourceKey) -> StoredObject | None: ...

    def list(
        self, group: str | None = None, kind: str | None = None, namespace: str | None = None
    ) -> builtins.list[StoredObject]:
        """Objects matching every filter given, sorted by key."""
        ...

    def apply(
        self, objects: builtins.list[dict[str, Any]], *, dry_run: bool = False
    ) -> builtins.list[Change]:
        """Create or update all objects in one transaction; ValueError leaves nothing changed."""
        ...

    def update_status(self, key: ResourceKey, status: dict[str, Any]) -> StoredObject:
        """Replace ``status``; bumps resourceVersion, not generation. KeyError if missing.

        A status equal to the stored one is not a write (no revision, no event)."""
        ...

    def delete(
        self, keys: builtins.list[ResourceKey], *, dry_run: bool = False, missing_ok: bool = False
    ) -> builtins.list[Change]:
        """Delete all keys in one transaction; KeyError (nothing deleted) if one is missing."""
        ...

    def history(self, key: ResourceKey) -> builtins.list[StoredObject]:
        """The last versions of a resource, oldest first, deletions included."""
        ...

    def rollback(self, key: ResourceKey, revision: int) -> Change:
        """Make the resource as it was at ``revision`` (a ``history`` entry), as a new write."""
        ...

    def revision(self) -> int: ...

    def events_since(self, revision: int) -> builtins.list[Event]:
        """Events with a revision above ``revision``; raises Compacted if some were dropped."""
        ...

    def watch(self, callback: WatchCallback) -> Callable[[], None]:
        """Call ``callback`` after each commit (SQLite: made through this store object;
        etcd: by any process on the same etcd); returns unsubscribe."""
        ...

    def fenced(self, fence: Fence | None) -> AbstractContextManager[None]:
        """Within the block, this thread's writes commit only while ``fence`` holds (None:
        unfenced); see the module rules."""
        ...

    def close(self) -> None: ...
