"""The config store on etcd v3: several control planes (and machines) share one store.

Rules of this module:
- Keys under the configured prefix (``/meshgate/registry`` unless the URL names another):
  ``objects/G/K/NS/NAME`` (the object), ``history/G/K/NS/NAME`` (its kept versions) and
  ``revision`` (written by every commit: its ``mod_revision`` is the store's revision).
- Every ``apply``/``delete``/``update_status``/``rollback`` is ONE etcd transaction: it puts
  or deletes the objects, their history keys and the revision key, guarded by a compare of
  each written object's ``mod_revision`` with what was read. If another writer got there
  first the transaction writes nothing and the whole call is planned again from a fresh
  read (``MAX_ATTEMPTS`` times, then ``StoreConflict``): no update is ever lost.
- Revisions are etcd's: all objects of one call share the transaction's revision, which is
  their ``resourceVersion``. uid, generation, creationTimestamp and status follow
  ``canonical`` exactly as in the SQLite backend.
- History is a per-object key holding the newest versions (``history_limit`` versions,
  ``history_bytes`` bytes, the newest always kept), one line each: a JSON header, a tab,
  the body. A version's revision is the history key's ``mod_revision`` when it was written;
  the next write of that key records it in the line.
- ``events_since`` reads etcd's own history (a watch from the revision asked for) and
  raises ``Compacted`` when etcd compacted past it; ``watch`` is ``etcd_watch.WatchHub``.
- Fencing (``fenced``): a fenced thread's transactions also compare the fence key's lease;
  when that compare fails the call raises ``Fenced`` at once (planning again cannot help).
  A write returns after the store's callbacks were handed its commit.
- Sizes: an object over ``MAX_OBJECT_BYTES`` refuses its whole write (``ObjectTooLarge``);
  etcd must accept transactions bigger than its defaults (docs/store.md names the flags).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from aetcd import rpc
from aetcd.utils import prefix_range_end

from meshgate.api.gcpause import paused_gc
from meshgate.api.meta import ResourceKey
from meshgate.store.base import (
    Change,
    Compacted,
    Event,
    Fence,
    Fenced,
    StoredObject,
    StoreError,
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
from meshgate.store.etcd_conn import FAILOVER_WINDOW, Connection, EtcdConfig
from meshgate.store.etcd_watch import (
    WatchHub,
    batches,
    decode_kv,
    key_path,
    parse_key,
    stamped,
    unstamped,
)
from meshgate.store.sqlite import HISTORY_BYTES, ObjectTooLarge
from meshgate.validation.limits import MAX_OBJECT_BYTES, too_large

log = logging.getLogger("meshgate.store.etcd")

MAX_ATTEMPTS = 50
# Keys read per read-only transaction (two ranges each): within etcd's default 128 ops.
_READ_CHUNK = 60


class StoreConflict(StoreError):
    """Other writers kept changing the same objects: the write was given up (nothing written)."""


@dataclass
class _Hist:
    """A history key as read: its lines and the revision of its last write."""

    mod_revision: int = 0
    lines: list[tuple[dict[str, Any], str]] = field(default_factory=list)

    @classmethod
    def parse(cls, kv: Any | None) -> _Hist:
        if kv is None:
            return cls()
        lines = []
        for line in kv.value.decode().splitlines():
            head, _, body = line.partition("\t")
            meta = json.loads(head)
            if meta.get("r") is None:
                meta["r"] = kv.mod_revision  # written by the last write of this key
            lines.append((meta, body))
        return cls(kv.mod_revision, lines)

    def encode(self) -> bytes:
        return "".join(to_json(m) + "\t" + b + "\n" for m, b in self.lines).encode()

    def prune(self, limit: int, max_bytes: int) -> None:
        kept: list[tuple[dict[str, Any], str]] = []
        total = 0
        for meta, body in reversed(self.lines):
            total += len(body)
            if kept and (len(kept) >= limit or total > max_bytes):
                break
            kept.append((meta, body))
        self.lines = kept[::-1]


@dataclass
class _Read:
    """The stored state of one key: object (kv or None) and history."""

    kv: Any | None
    hist: _Hist

    @property
    def mod_revision(self) -> int:
        return 0 if self.kv is None else int(self.kv.mod_revision)

    def current(self) -> Current | None:
        if self.kv is None:
            return None
        obj = decode_kv(self.kv)
        return Current(obj, int(obj["metadata"].get("generation", 1)))


def _new_uid() -> str:
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40
    raw[8] = raw[8] & 0x3F | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _body(obj: dict[str, Any], where: str, key: ResourceKey) -> str:
    """The stored text of ``obj``; ObjectTooLarge (naming ``key``) as SQLite's store says."""
    body = to_json(unstamped(obj), where)
    # len(body) bounds the UTF-8 size from below and by a quarter from above.
    if len(body) * 4 > MAX_OBJECT_BYTES:
        problem = too_large(len(body.encode()))
        if problem is not None:
            raise ObjectTooLarge(f"{key}: {problem}")
    return body


class _Plan:
    """The writes of one call, planned against one read."""

    def __init__(self, reads: dict[ResourceKey, _Read]) -> None:
        self.reads = reads
        self.pending: dict[ResourceKey, Current | None] = {k: r.current() for k, r in reads.items()}
        self.puts: dict[ResourceKey, str] = {}  # key -> body
        # Ordered (a dict, not a set): a transaction's events come in its operations' order.
        self.deletes: dict[ResourceKey, None] = {}
        self.changes: list[tuple[Change, bool]] = []  # (change, written)

    @property
    def written(self) -> bool:
        return bool(self.puts or self.deletes)

    def history(self, key: ResourceKey, meta: dict[str, Any], body: str) -> None:
        hist = self.reads[key].hist
        hist.lines.append(({**meta, "r": None}, body))


class EtcdStore:
    """A ``ConfigStore`` on etcd. Use as a context manager, or call ``close``."""

    def __init__(
        self,
        config: EtcdConfig,
        *,
        history_limit: int = 10,
        history_bytes: int = HISTORY_BYTES,
    ) -> None:
        if history_limit < 1 or history_bytes < 1:
            raise ValueError("history_limit and history_bytes must be at least 1")
        self.config = config
        self.url = config.url
        self.history_limit = history_limit
        self.history_bytes = history_bytes
        base = config.prefix.encode()
        self._objects = base + b"/objects/"
        self._history = base + b"/history/"
        self._revkey = base + b"/revision"
        self.conn = Connection(config)
        self._fence = threading.local()  # .fence: the calling thread's Fence, if any
        self._hub = WatchHub(self.conn, self._objects)
        try:
            # Unreachable etcd: a clear error now (not after a failover wait, not at a write).
            self.conn.run(self._range(self._revkey, retry=0))
        except BaseException:
            self.conn.close()
            raise

    def __enter__(self) -> EtcdStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._hub.close()
        self.conn.close()

    @contextlib.contextmanager
    def fenced(self, fence: Fence | None) -> Iterator[None]:
        before = getattr(self._fence, "fence", None)
        self._fence.fence = fence
        try:
            yield
        finally:
            self._fence.fence = before

    # reads

    async def _range(self, key: bytes, end: bytes = b"", *, retry: float = FAILOVER_WINDOW) -> Any:
        return await self.conn.kv("Range", rpc.RangeRequest(key=key, range_end=end), retry=retry)

    def get(self, key: ResourceKey) -> StoredObject | None:
        resp = self.conn.run(self._range(key_path(self._objects, key)))
        if not resp.kvs:
            return None
        obj = decode_kv(resp.kvs[0])
        return StoredObject(key, obj, resp.kvs[0].mod_revision, obj["metadata"]["generation"])

    def list(
        self, group: str | None = None, kind: str | None = None, namespace: str | None = None
    ) -> builtins.list[StoredObject]:
        # The narrowest key prefix the filters allow; the rest is filtered here.
        start = self._objects
        parts = [group, kind, namespace]
        for part in parts:
            if part is None:
                break
            start += quote(part, safe="").encode() + b"/"
        resp = self.conn.run(self._range(start, prefix_range_end(start)))
        out = []
        for m in resp.kvs:
            key = parse_key(self._objects, m.key)
            if any(
                want is not None and want != have
                for want, have in zip(parts, key[:3], strict=False)
            ):
                continue
            obj = decode_kv(m)
            out.append(StoredObject(key, obj, m.mod_revision, obj["metadata"]["generation"]))
        out.sort(key=lambda s: tuple(s.key))
        return out

    def history(self, key: ResourceKey) -> builtins.list[StoredObject]:
        resp = self.conn.run(self._range(key_path(self._history, key)))
        hist = _Hist.parse(resp.kvs[0] if resp.kvs else None)
        return [
            StoredObject(
                key,
                stamped(json.loads(body), meta.get("v", meta["r"])),
                meta["r"],
                meta["g"],
                bool(meta["d"]),
                bool(meta["c"]),
            )
            for meta, body in hist.lines
        ]

    def revision(self) -> int:
        """The revision of the store's last commit; before the first, etcd's current one
        (other keys on the same etcd move it: it is only ever a lower bound to poll from)."""
        resp = self.conn.run(self._range(self._revkey))
        return int(resp.kvs[0].mod_revision if resp.kvs else resp.header.revision)

    def events_since(self, revision: int) -> builtins.list[Event]:
        return self.conn.run(self._events_since(revision), timeout=60)

    async def _events_since(self, revision: int) -> builtins.list[Event]:
        head = await self._range(self._revkey)
        target = int(head.kvs[0].mod_revision) if head.kvs else 0
        if revision >= target:
            return []
        await self.conn.client.connect()
        create = rpc.WatchCreateRequest(
            key=self._objects,
            range_end=prefix_range_end(self._objects),
            start_revision=revision + 1,
            prev_kv=True,
        )

        async def requests() -> Any:
            yield rpc.WatchRequest(create_request=create)
            await asyncio.sleep(3600)

        out: list[Event] = []
        call = self.conn.client.watchstub.Watch(requests(), metadata=self.conn.metadata)
        try:
            async with asyncio.timeout(30):
                async for resp in call:
                    if resp.compact_revision:
                        raise Compacted(revision, resp.compact_revision - 1)
                    if resp.canceled:
                        raise StoreError(f"etcd at {self.url}: watch refused: {resp.cancel_reason}")
                    for batch in batches(self._objects, resp.events):
                        if batch[0].revision > target:
                            return out
                        out.extend(batch)
                    if out and out[-1].revision >= target:
                        return out
        finally:
            call.cancel()
        return out

    async def _read(self, keys: builtins.list[ResourceKey]) -> dict[ResourceKey, _Read]:
        """Objects and history of ``keys``, a read-only transaction per chunk of keys."""
        out: dict[ResourceKey, _Read] = {}
        for start in range(0, len(keys), _READ_CHUNK):
            chunk = keys[start : start + _READ_CHUNK]
            ops = []
            for key in chunk:
                for base in (self._objects, self._history):
                    ops.append(
                        rpc.RequestOp(request_range=rpc.RangeRequest(key=key_path(base, key)))
                    )
            resp = await self.conn.kv("Txn", rpc.TxnRequest(success=ops))
            ranges = [r.response_range for r in resp.responses]
            for i, key in enumerate(chunk):
                obj, hist = ranges[2 * i].kvs, ranges[2 * i + 1].kvs
                out[key] = _Read(obj[0] if obj else None, _Hist.parse(hist[0] if hist else None))
        return out

    # writes

    def _write(self, keys: builtins.list[ResourceKey], plan: Callable[[_Plan], None]) -> _Plan:
        """Read ``keys``, plan with ``plan``, commit guarded by compares; again on conflict."""
        unique = builtins.list(dict.fromkeys(keys))
        fence: Fence | None = getattr(self._fence, "fence", None)
        for attempt in range(MAX_ATTEMPTS):
            reads = self.conn.run(self._read(unique))
            p = _Plan(reads)
            plan(p)
            if not p.written:
                return p
            revision = self.conn.run(self._commit(p, fence))
            if revision:
                self._stamp(p, revision)
                self._hub.wait_delivered(revision)
                return p
            log.debug("etcd store: conflicting write on attempt %d, planning again", attempt + 1)
        raise StoreConflict(
            f"etcd at {self.url}: {len(unique)} object(s) kept changing under "
            f"{MAX_ATTEMPTS} attempts to write them; nothing was written"
        )

    async def _commit(self, p: _Plan, fence: Fence | None = None) -> int:
        """The transaction's revision, or 0 if a compare failed (nothing written); raises
        ``Fenced`` if the fence's compare failed."""
        compare, ops, failure = [], [], []
        if fence is not None:
            compare.append(
                rpc.Compare(
                    result=rpc.Compare.CompareResult.EQUAL,
                    target=rpc.Compare.CompareTarget.LEASE,
                    key=fence.key,
                    lease=fence.lease,
                )
            )
            # On failure, the fence key as it is: whose lease holds it, if anyone's.
            failure.append(rpc.RequestOp(request_range=rpc.RangeRequest(key=fence.key)))
        for key in [*p.puts, *p.deletes]:
            path = key_path(self._objects, key)
            compare.append(
                rpc.Compare(
                    result=rpc.Compare.CompareResult.EQUAL,
                    target=rpc.Compare.CompareTarget.MOD,
                    key=path,
                    mod_revision=p.reads[key].mod_revision,
                )
            )
        for key, body in p.puts.items():
            ops.append(
                rpc.RequestOp(
                    request_put=rpc.PutRequest(
                        key=key_path(self._objects, key), value=body.encode()
                    )
                )
            )
        for key in p.deletes:
            ops.append(
                rpc.RequestOp(
                    request_delete_range=rpc.DeleteRangeRequest(key=key_path(self._objects, key))
                )
            )
        for key in [*p.puts, *p.deletes]:
            hist = p.reads[key].hist
            if not any(meta["r"] is None for meta, _ in hist.lines):
                continue  # a status write: no new version
            hist.prune(self.history_limit, self.history_bytes)
            ops.append(
                rpc.RequestOp(
                    request_put=rpc.PutRequest(
                        key=key_path(self._history, key), value=hist.encode()
                    )
                )
            )
        ops.append(rpc.RequestOp(request_put=rpc.PutRequest(key=self._revkey, value=b"")))
        resp = await self.conn.kv(
            "Txn", rpc.TxnRequest(compare=compare, success=ops, failure=failure)
        )
        if resp.succeeded:
            return int(resp.header.revision)
        if fence is not None:
            held = resp.responses[0].response_range.kvs
            if not held or held[0].lease != fence.lease:
                raise Fenced(
                    f"etcd at {self.url}: {fence.key.decode()} is "
                    + ("gone" if not held else "held under another lease")
                    + f" (this writer's lease {fence.lease:x} no longer holds it): "
                    "nothing was written"
                )
        return 0

    def _stamp(self, p: _Plan, revision: int) -> None:
        p.changes = [
            (Change(c.key, c.action, stamped(c.object, revision)) if written else c, written)
            for c, written in p.changes
        ]

    def apply(
        self, objects: builtins.list[dict[str, Any]], *, dry_run: bool = False
    ) -> builtins.list[Change]:
        with paused_gc(len(objects)):
            keyed = [(key_of(obj, f"object {i}"), obj) for i, obj in enumerate(objects)]
            now = now_rfc3339()

            def plan(p: _Plan) -> None:
                for i, (key, obj) in enumerate(keyed):
                    self._plan_apply(p, key, obj, now, f"object {i} ({key})")
                if dry_run:
                    p.puts.clear()

            p = self._write([k for k, _ in keyed], plan)
            if dry_run:
                self._stamp(p, self.revision() + 1)
            return [c for c, _ in p.changes]

    def _plan_apply(
        self, p: _Plan, key: ResourceKey, obj: dict[str, Any], now: str, where: str
    ) -> None:
        current = p.pending[key]
        uid = _new_uid() if current is None else ""
        planned = plan_write(current, obj, revision=0, now=now, uid=uid)
        if planned.action == "unchanged":
            p.changes.append((Change(key, "unchanged", planned.object), False))
            return
        body = _body(planned.object, where, key)
        p.puts[key] = body
        p.deletes.pop(key, None)
        p.history(key, {"g": planned.generation, "d": 0, "c": int(current is None)}, body)
        p.pending[key] = Current(planned.object, planned.generation)
        p.changes.append((Change(key, planned.action, planned.object), True))

    def update_status(self, key: ResourceKey, status: dict[str, Any]) -> StoredObject:
        def plan(p: _Plan) -> None:
            current = p.pending[key]
            if current is None:
                raise KeyError(f"{key} not found")
            if current.object.get("status", {}) == status:
                p.changes.append((Change(key, "unchanged", current.object), False))
                return
            new = with_status(current.object, status, revision=0)
            p.puts[key] = _body(new, f"status of {key}", key)
            p.changes.append((Change(key, "configured", new), True))

        p = self._write([key], plan)
        obj = p.changes[0][0].object
        return StoredObject(
            key, obj, int(obj["metadata"]["resourceVersion"]), obj["metadata"]["generation"]
        )

    def delete(
        self, keys: builtins.list[ResourceKey], *, dry_run: bool = False, missing_ok: bool = False
    ) -> builtins.list[Change]:
        def plan(p: _Plan) -> None:
            self._plan_delete(p, keys, missing_ok)
            if dry_run:
                p.deletes.clear()

        with paused_gc(len(keys)):
            p = self._write(keys, plan)
        return [c for c, _ in p.changes]

    def _plan_delete(self, p: _Plan, keys: builtins.list[ResourceKey], missing_ok: bool) -> None:
        unique = builtins.list(dict.fromkeys(keys))
        missing = [str(k) for k in unique if p.pending[k] is None]
        if missing and not missing_ok:
            raise KeyError(f"not found: {', '.join(missing)}")
        for key in unique:
            current = p.pending[key]
            if current is None:
                continue
            body = _body(current.object, str(key), key)
            p.puts.pop(key, None)
            p.deletes[key] = None
            # A deletion's version is the object it removed, with that object's revision.
            rv = int(current.object["metadata"]["resourceVersion"])
            p.history(key, {"g": current.generation, "d": 1, "c": 0, "v": rv}, body)
            p.pending[key] = None
            # The last state, as stored (its own resourceVersion), as SQLite reports it.
            p.changes.append((Change(key, "deleted", current.object), False))

    def rollback(self, key: ResourceKey, revision: int) -> Change:
        kept = {h.resource_version: h for h in self.history(key)}
        version = kept.get(revision)
        if version is None:
            raise KeyError(f"{key} has no kept version at revision {revision}")
        if version.deleted:
            changes = self.delete([key], missing_ok=True)
            return changes[0] if changes else Change(key, "unchanged", {})
        where = f"{key} at revision {revision}"
        obj = user_view(version.object)

        def plan(p: _Plan) -> None:
            self._plan_apply(p, key, obj, now_rfc3339(), where)

        return self._write([key], plan).changes[0][0]

    def watch(self, callback: WatchCallback) -> Callable[[], None]:
        """Call ``callback`` with each commit on this etcd prefix, by any process."""
        self._hub.subscribe(callback)

        def unsubscribe() -> None:
            self._hub.unsubscribe(callback)

        return unsubscribe
