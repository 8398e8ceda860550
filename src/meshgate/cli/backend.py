"""What the verbs call to read and change the mesh's configuration.

Rules of this module:
- ``Backend`` is the whole contract between the verbs and a mesh. Objects cross it as
  canonical wire dicts (camelCase, as ``Resource.to_wire()`` makes them), so a backend
  over the control plane's HTTP API implements it with plain JSON.
- ``apply`` and ``delete`` are all-or-nothing; ``dry_run`` reports what would change and
  changes nothing. ``delete`` skips keys that do not exist (no result for them), so the
  verb can say which were missing, as kubectl does.
- ``get`` filters by kind, namespace (``None`` = every namespace), name and label selector
  (kubectl syntax; ``ValueError`` if malformed); results are sorted by namespace, name.
- ``LocalBackend`` opens the store in the state directory in-process, for when no
  control plane runs (or in tests); it never validates: the verbs did that before.
  Reading never creates anything: without a state directory there is nothing to read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from meshgate.api.meta import ResourceKey

if TYPE_CHECKING:
    from meshgate.api.registry import KindInfo
    from meshgate.store.base import ConfigStore

Obj = dict[str, Any]


@dataclass(frozen=True)
class ChangeResult:
    """What happened (or would happen, on a dry run) to one resource."""

    key: ResourceKey
    action: str  # "created" | "configured" | "unchanged" | "deleted"
    object: Obj | None = None


@dataclass(frozen=True)
class HistoryEntry:
    """One stored version of a resource; ``deleted`` marks the version that removed it."""

    revision: int
    generation: int
    deleted: bool
    object: Obj
    # The version that created its object; None: not known (an older store or server).
    created: bool | None = None


class Backend(Protocol):
    def apply(self, objects: list[Obj], dry_run: bool) -> list[ChangeResult]: ...

    def get(
        self, kind: KindInfo, namespace: str | None, name: str | None, selector: str | None
    ) -> list[Obj]: ...

    def delete(self, keys: list[ResourceKey], dry_run: bool) -> list[ChangeResult]: ...

    def history(self, key: ResourceKey) -> list[HistoryEntry]: ...

    def revision(self) -> int: ...


def _sort_key(obj: Obj) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def sort_objects(items: list[Obj]) -> list[Obj]:
    """By namespace, then name: the order kubectl lists in."""
    return sorted(items, key=_sort_key)


class LocalBackend:
    """The store in ``state_dir``, opened on first use and kept for the process."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self._store: ConfigStore | None = None

    @property
    def store(self) -> ConfigStore:
        if self._store is None:
            from meshgate.store import open_store

            self._store = open_store(self.state_dir)
        return self._store

    @property
    def exists(self) -> bool:
        return self._store is not None or self.state_dir.is_dir()

    def apply(self, objects: list[Obj], dry_run: bool) -> list[ChangeResult]:
        # The same admission defaults the control plane's API applies (imported only when
        # needed: the admission module pulls in the snapshot model).
        if any((o.get("metadata") or {}).get("ownerReferences") for o in objects):
            from meshgate.server.admission import default_owner_uids

            def stored_of(group: str, kind: str) -> list[Obj]:
                return [s.object for s in self.store.list(group=group, kind=kind)]

            objects = default_owner_uids(objects, stored_of)
        if any(o.get("kind") == "Service" for o in objects):
            from meshgate.server.admission import default_cluster_ips

            stored = (s.object for s in self.store.list(kind="Service"))
            objects = default_cluster_ips(objects, stored)
        changes = self.store.apply(objects, dry_run=dry_run)
        return [ChangeResult(c.key, c.action, c.object) for c in changes]

    def get(
        self, kind: KindInfo, namespace: str | None, name: str | None, selector: str | None
    ) -> list[Obj]:
        from meshgate.cli.selector import parse_selector

        wanted = parse_selector(selector)
        if not self.exists:
            return []
        ns = namespace if kind.namespaced else ""
        if name is not None and ns is not None:
            one = self.store.get(ResourceKey(kind.group, kind.kind, ns, name))
            found = [] if one is None else [one]
        else:
            found = self.store.list(group=kind.group, kind=kind.kind, namespace=ns)
        items = [
            s.object
            for s in found
            if (name is None or s.key.name == name)
            and wanted.matches((s.object.get("metadata") or {}).get("labels"))
        ]
        return sort_objects(items)

    def delete(self, keys: list[ResourceKey], dry_run: bool) -> list[ChangeResult]:
        if not self.exists:
            return []
        changes = self.store.delete(keys, dry_run=dry_run, missing_ok=True)
        return [ChangeResult(c.key, c.action, c.object) for c in changes]

    def history(self, key: ResourceKey) -> list[HistoryEntry]:
        if not self.exists:
            return []
        return [
            HistoryEntry(s.resource_version, s.generation, s.deleted, s.object, s.created)
            for s in self.store.history(key)
        ]

    def revision(self) -> int:
        return self.store.revision() if self.exists else 0
