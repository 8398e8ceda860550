"""The access-log sink: one writer thread between the proxies and the store.

Rules of this module:
- Two inputs. ``offer`` (the ALS handler, on the event loop) never blocks: entries go to a
  bounded queue (``queue_size`` entries); when it is full the batch is dropped and counted
  (``dropped``), never waited for, so a slow disk cannot stall the gRPC server.
  The backfill, in the writer thread itself, reads every local proxy's own log file from
  where it stopped (offset and inode kept in the store), so what the stream lost (a proxy
  killed with its in-memory buffer, a control-plane restart, a full queue) is stored
  anyway, within ``backfill_interval`` seconds, and once (the store de-duplicates).
- A log file replaced by a restart is finished from its ``.previous.log`` (same inode)
  before the new one is read from its start.
- Prune runs at most every ``prune_interval`` seconds, in the same thread.
- ``on_new`` sees each entry the store did not have yet: metrics count requests once.
- With replicas, a third input: ``peers`` pulls the other replicas' own rows, in this
  thread, with each backfill (``peers.py``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from meshgate.telemetry import entries
from meshgate.telemetry.peers import Peers
from meshgate.telemetry.store import AccessLogStore

log = logging.getLogger(__name__)

# -> (reporter, current log file) of every local proxy
LogFiles = Callable[[], list[tuple[entries.Reporter, Path]]]
_MAX_READ = 4 * 1024 * 1024  # per file and pass: one busy proxy does not starve the rest


@dataclass
class Counters:
    received_als: int = 0
    received_file: int = 0
    received_replica: int = 0
    replicas_unanswered: int = 0  # now, not a count
    stored: int = 0
    dropped_queue_full: int = 0
    pruned: int = 0


class Sink:
    def __init__(
        self,
        store: AccessLogStore,
        log_files: LogFiles,
        *,
        queue_size: int = 10_000,
        backfill_interval: float = 1.0,
        prune_interval: float = 10.0,
        on_new: Callable[[list[entries.Entry]], None] | None = None,
        peers: Peers | None = None,
    ) -> None:
        self.store = store
        self.counters = Counters()
        self._log_files = log_files
        self._queue: queue.Queue[list[entries.Entry]] = queue.Queue(maxsize=max(1, queue_size))
        self._queued = 0
        self._limit = queue_size
        self._lock = threading.Lock()
        self._backfill_interval = backfill_interval
        self._prune_interval = prune_interval
        self._on_new = on_new
        self.peers = peers
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- inputs ------------------------------------------------------------------------

    def offer(self, batch: list[entries.Entry]) -> None:
        """From the ALS stream: queue ``batch`` or, when the queue is full, drop it."""
        if not batch:
            return
        with self._lock:
            self.counters.received_als += len(batch)
            if self._queued + len(batch) > self._limit:
                self.counters.dropped_queue_full += len(batch)
                return
            self._queued += len(batch)
        self._queue.put_nowait(batch)

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="accesslog-sink", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait([])  # wakes the writer now: it need not wait out its sleep
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.store.close()

    def flush(self) -> None:
        """Store what is queued and backfill now (tests, and the last pass at stop)."""
        self._drain()
        self.backfill()

    # -- the writer thread -------------------------------------------------------------

    def _run(self) -> None:
        next_backfill = next_prune = 0.0
        while not self._stop.is_set():
            # Asleep until an entry comes or the next backfill is due (not polling at rest).
            wait = min(next_backfill, next_prune) - time.monotonic()
            try:
                first = self._queue.get(timeout=min(max(wait, 0.01), 1.0))
            except queue.Empty:
                first = None
            try:
                if first is not None:
                    self._store([first, *self._take()])
                now = time.monotonic()
                if now >= next_backfill:
                    self.backfill()
                    self.pull_peers()
                    next_backfill = now + self._backfill_interval
                if now >= next_prune:
                    self.counters.pruned += self.store.prune()
                    next_prune = now + self._prune_interval
            except Exception:
                log.exception("access-log sink pass failed")
        try:
            self.flush()
        except Exception:
            log.exception("access-log sink: last pass failed")

    def _take(self) -> list[list[entries.Entry]]:
        out = []
        while True:
            try:
                out.append(self._queue.get_nowait())
            except queue.Empty:
                return out

    def _drain(self) -> None:
        self._store(self._take())

    def _store(self, batches: list[list[entries.Entry]]) -> None:
        flat = [e for b in batches for e in b]
        with self._lock:
            self._queued -= len(flat)
        self._add(flat)

    def _add(self, flat: list[entries.Entry]) -> None:
        if not flat:
            return
        new = self.store.add(flat)
        self.counters.stored += len(new)
        if new and self._on_new is not None:
            self._on_new(new)

    def pull_peers(self) -> None:
        if self.peers is None:
            return
        before = self.peers.received
        self.peers.pull(self.store, self._add)
        self.counters.received_replica += self.peers.received - before
        self.counters.replicas_unanswered = len(self.peers.notes())

    def notes(self) -> list[str]:
        """Which replicas' entries are missing now (see ``peers.py``); none without replicas."""
        return [] if self.peers is None else self.peers.notes()

    def backfill(self) -> None:
        for reporter, path in self._log_files():
            try:
                self._tail(reporter, path)
            except OSError as exc:
                log.debug("access-log backfill of %s: %s", path, exc)

    def _tail(self, reporter: entries.Reporter, path: Path) -> None:
        key = str(path)
        inode, offset = self.store.offset(key)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return
        if (st.st_ino, st.st_size) == (inode, offset):
            return  # nothing new: no read, and no write to the store (every second at rest)
        if inode and st.st_ino != inode:
            previous = path.with_name(path.name.removesuffix(".log") + ".previous.log")
            try:
                if os.stat(previous).st_ino == inode:
                    self._read(reporter, previous, offset, None)
            except FileNotFoundError:
                pass
            offset = 0
        elif st.st_size < offset:
            offset = 0  # truncated
        end = self._read(reporter, path, offset, _MAX_READ)
        self.store.set_offset(key, st.st_ino, end)

    def _read(self, reporter: entries.Reporter, path: Path, offset: int, limit: int | None) -> int:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read() if limit is None else fh.read(limit)
        complete = data.rfind(b"\n") + 1  # a partly written last line waits for the next pass
        batch = []
        for line in data[:complete].splitlines():
            if line.startswith(b"{"):
                entry = entries.from_line(line, reporter)
                if entry is not None:
                    batch.append(entry)
        self.counters.received_file += len(batch)
        self._add(batch)
        return offset + complete
