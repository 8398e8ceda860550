"""The etcd store's keys and its watch: one etcd watch per store, fanned out to callbacks.

Rules of this module:
- An object lives at ``PREFIX/objects/GROUP/KIND/NAMESPACE/NAME`` (each part
  percent-encoded; the core group is empty). Its body is the stored object without
  ``metadata.resourceVersion``: that is the key's ``mod_revision``, filled in on every read
  (as the Kubernetes API server does), so a body never has to know its commit's revision.
- One etcd transaction is one etcd revision: its events come in one watch response and
  are handed to callbacks as one batch, in the transaction's order.
- The watch sees every commit on the prefix, whichever process made it. After a dropped
  stream it resumes from the revision after the last one received: nothing is missed or
  repeated. When etcd has compacted past that revision, it logs so and resyncs: it lists
  the prefix, hands the differences to callbacks as one batch (a deletion it did not see
  comes with the object's identity only), and watches on from the listing's revision.
- Callbacks run on the watch's own thread, one batch at a time, in revision order; they
  may use the store (its calls run on the connection's loop, not this thread).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
import logging
import queue
import threading
from typing import Any
from urllib.parse import quote, unquote

import grpc
from aetcd import rpc
from aetcd.utils import prefix_range_end

from meshgate.api.meta import ResourceKey
from meshgate.store.base import Event, EventType, WatchCallback
from meshgate.store.etcd_conn import Connection

log = logging.getLogger("meshgate.store.etcd")


def key_path(prefix: bytes, key: ResourceKey) -> bytes:
    return prefix + "/".join(quote(part, safe="") for part in key).encode()


def parse_key(prefix: bytes, raw: bytes) -> ResourceKey:
    parts = raw[len(prefix) :].decode().split("/")
    return ResourceKey(*(unquote(p) for p in parts))


def stamped(obj: dict[str, Any], revision: int) -> dict[str, Any]:
    """The object with ``metadata.resourceVersion`` set (top level and metadata copied)."""
    return {**obj, "metadata": {**obj.get("metadata", {}), "resourceVersion": str(revision)}}


def unstamped(obj: dict[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in obj.get("metadata", {}).items() if k != "resourceVersion"}
    return {**obj, "metadata": meta}


def decode_kv(kv: Any) -> dict[str, Any]:
    obj: dict[str, Any] = json.loads(kv.value)
    return stamped(obj, kv.mod_revision)


def decode_event(prefix: bytes, ev: Any) -> Event:
    key = parse_key(prefix, ev.kv.key)
    if ev.type == rpc.Event.EventType.PUT:
        etype: EventType = "ADDED" if ev.kv.version == 1 else "MODIFIED"
        return Event(ev.kv.mod_revision, etype, key, decode_kv(ev.kv))
    if ev.HasField("prev_kv") and ev.prev_kv.value:
        obj = decode_kv(ev.prev_kv)
    else:
        obj = identity(key, "", ev.kv.mod_revision)
    return Event(ev.kv.mod_revision, "DELETED", key, obj)


def identity(key: ResourceKey, api_version: str, revision: int) -> dict[str, Any]:
    """What is left of a deleted object whose last state is gone (compacted)."""
    meta: dict[str, Any] = {"name": key.name, "resourceVersion": str(revision)}
    if key.namespace:
        meta["namespace"] = key.namespace
    return {"apiVersion": api_version, "kind": key.kind, "metadata": meta}


def batches(prefix: bytes, events: Any) -> builtins.list[builtins.list[Event]]:
    """A watch response's events, one batch per revision (one batch per transaction)."""
    out: list[list[Event]] = []
    for ev in events:
        event = decode_event(prefix, ev)
        if out and out[-1][0].revision == event.revision:
            out[-1].append(event)
        else:
            out.append([event])
    return out


class WatchHub:
    """One etcd watch on a store's objects, started with the first callback."""

    def __init__(self, conn: Connection, prefix: bytes) -> None:
        self.conn = conn
        self.prefix = prefix
        self._callbacks: list[WatchCallback] = []
        self._cond = threading.Condition()
        self._queue: queue.SimpleQueue[list[Event] | None] = queue.SimpleQueue()
        self.delivered = 0  # the last revision whose batch the callbacks were handed
        self._next = 0  # the revision the etcd watch (re)starts from
        self._known: dict[bytes, tuple[int, str]] = {}  # key -> (mod_revision, apiVersion)
        self._started = False
        self._closed = False
        self._task: Any = None
        self._stop: asyncio.Event | None = None
        self._dispatcher: threading.Thread | None = None
        self.resyncs = 0

    def subscribe(self, callback: WatchCallback) -> None:
        with self._cond:
            self._callbacks.append(callback)
            if not self._started:
                self._start()

    def unsubscribe(self, callback: WatchCallback) -> None:
        with self._cond:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

    def _start(self) -> None:
        revision = self.conn.run(self._list())[0]
        self.delivered = revision
        self._next = revision + 1
        self._started = True
        self._dispatcher = threading.Thread(
            target=self._dispatch, name="meshgate-etcd-watch", daemon=True
        )
        self._dispatcher.start()
        self._task = asyncio.run_coroutine_threadsafe(self._run(), self.conn.loop)

    def wait_delivered(self, revision: int, timeout: float = 10.0) -> None:
        """Return once callbacks were handed ``revision`` (a write waits for its own
        commit, so a caller sees the same order as with SQLite's in-call notification)."""
        if not self._started or threading.current_thread() is self._dispatcher:
            return
        with self._cond:
            if not self._cond.wait_for(lambda: self.delivered >= revision or self._closed, timeout):
                log.warning("etcd watch: revision %d not delivered after %.0f s", revision, timeout)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if not self._started:
            return
        stop = self._stop
        if stop is not None:
            self.conn.loop.call_soon_threadsafe(stop.set)
        if self._task is not None:
            self._task.cancel()
        self._queue.put(None)
        if self._dispatcher is not None and self._dispatcher is not threading.current_thread():
            self._dispatcher.join(5)

    # on the dispatcher thread

    def _dispatch(self) -> None:
        while True:
            batch = self._queue.get()
            if batch is None:
                return
            with self._cond:
                callbacks = list(self._callbacks)
            for callback in callbacks:
                try:
                    callback(batch)
                except Exception:
                    log.exception("store watcher %r failed", callback)
            with self._cond:
                self.delivered = max(self.delivered, batch[-1].revision)
                self._cond.notify_all()

    # on the connection's loop

    async def _list(self) -> tuple[int, list[Any]]:
        resp = await self.conn.kv(
            "Range", rpc.RangeRequest(key=self.prefix, range_end=prefix_range_end(self.prefix))
        )
        self._known = {
            m.key: (m.mod_revision, json.loads(m.value).get("apiVersion", "")) for m in resp.kvs
        }
        return resp.header.revision, list(resp.kvs)

    async def _run(self) -> None:
        self._stop = asyncio.Event()
        delay = 0.2
        while not self._closed:
            try:
                await self._stream()
                delay = 0.2
            except asyncio.CancelledError:
                return
            except grpc.aio.AioRpcError as exc:
                if self._closed:
                    return
                if self.conn.config.user and "auth token" in (exc.details() or ""):
                    with contextlib.suppress(grpc.aio.AioRpcError):
                        await self.conn.client.authenticate()
                log.warning(
                    "etcd watch on %s lost (%s); resuming from revision %d",
                    self.conn.config.url,
                    exc.details() or exc.code().name,
                    self._next,
                )
            except Exception:
                log.exception("etcd watch on %s failed; resuming", self.conn.config.url)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def _stream(self) -> None:
        await self.conn.client.connect()
        stop = self._stop
        assert stop is not None
        create = rpc.WatchCreateRequest(
            key=self.prefix,
            range_end=prefix_range_end(self.prefix),
            start_revision=self._next,
            prev_kv=True,
            progress_notify=True,
        )

        async def requests() -> Any:
            yield rpc.WatchRequest(create_request=create)
            await stop.wait()  # keep the stream open until the store closes

        call = self.conn.client.watchstub.Watch(requests(), metadata=self.conn.metadata)
        try:
            async for resp in call:
                if resp.compact_revision:
                    await self._resync(resp.compact_revision)
                    return
                if resp.canceled:
                    raise grpc.aio.AioRpcError(
                        grpc.StatusCode.UNAVAILABLE,
                        grpc.aio.Metadata(),
                        grpc.aio.Metadata(),
                        details=f"watch canceled by etcd: {resp.cancel_reason or 'no reason'}",
                    )
                for batch in batches(self.prefix, resp.events):
                    self._track(batch)
                    self._next = batch[-1].revision + 1
                    self._queue.put(batch)
                if self._closed:
                    return
        finally:
            with contextlib.suppress(Exception):
                call.cancel()

    def _track(self, batch: list[Event]) -> None:
        for e in batch:
            raw = key_path(self.prefix, e.key)
            if e.type == "DELETED":
                self._known.pop(raw, None)
            else:
                self._known[raw] = (e.revision, e.object.get("apiVersion", ""))

    async def _resync(self, compact_revision: int) -> None:
        self.resyncs += 1
        log.warning(
            "etcd at %s compacted its history up to revision %d, past revision %d this watch "
            "needs: full resync (listing the store again)",
            self.conn.config.url,
            compact_revision,
            self._next - 1,
        )
        before = self._known
        revision, kvs = await self._list()
        events: list[Event] = []
        for m in kvs:
            seen = before.pop(m.key, None)
            if seen is None or seen[0] != m.mod_revision:
                etype: EventType = "ADDED" if seen is None else "MODIFIED"
                events.append(
                    Event(m.mod_revision, etype, parse_key(self.prefix, m.key), decode_kv(m))
                )
        for raw, (_, api_version) in before.items():
            key = parse_key(self.prefix, raw)
            events.append(Event(revision, "DELETED", key, identity(key, api_version, revision)))
        events.sort(key=lambda e: e.revision)
        self._next = revision + 1
        if events:
            self._queue.put(events)
        log.warning("etcd watch resynced at revision %d: %d changes", revision, len(events))
