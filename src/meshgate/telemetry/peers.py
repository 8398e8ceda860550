"""The other replicas' access-log entries, pulled into this replica's store.

With several control planes on one etcd (docs/replicas.md), each proxy streams its entries
to the replica it is connected to. So that the mesh-wide log, ``top`` and the traffic
metrics answer for the whole mesh whichever replica is asked, each replica's own store is
read by all: every replica pulls, about every second, the rows each other registered
replica received itself (``GET /v1/accesslog/rows``, over that replica's API socket) into
its own store.

Rules of this module:
- The store keeps a request once (its key), whichever replicas received it: a request
  streamed to A and backfilled by B from the proxy's own file is one row on each, and is
  counted once in each replica's metrics. Each replica's traffic metrics are therefore the
  mesh's, not a share to be summed. A pulled row (source ``replica``) is never pulled on.
- Where each replica was read up to is kept in the store (``replica:<id>`` among the
  backfill's offsets), so a restart resumes there and counts nothing twice. A replica
  whose store started again (its last row id is below the cursor) is read from its start.
- A replica that does not answer within ``timeout`` is skipped (never waited for longer,
  never raised) and tried again after ``RETRY_AFTER``; ``notes()`` names it, and since
  when its entries are missing, until it answers again (or ``NOTE_FOR`` after its last
  failure, when it is gone from the mesh for good). The API adds the notes to its answers.
- Runs in the access-log sink's writer thread (the store's one writer).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from meshgate.telemetry import entries
from meshgate.translate.accesslog import ACCESS_LOG_FIELDS, REASON_KEY

log = logging.getLogger(__name__)

SOURCE = "replica"
BATCH = 5000  # rows per replica and pass: a replica catching up does not stall the writer
TIMEOUT = 1.0  # seconds a replica has to answer one pull
RETRY_AFTER = 5.0  # seconds before a replica that did not answer is asked again
NOTE_FOR = 600.0  # seconds a replica's note outlives its last failure
CURSOR_PREFIX = "replica:"

# (replica's registration, after row id, limit, timeout) -> (rows [[id, workload, body]], last id)
Fetch = Callable[[dict[str, Any], int, int, float], tuple[list[Any], int]]
Replicas = Callable[[], list[dict[str, Any]]]


def fetch_over_api(replica: dict[str, Any], after: int, limit: int, timeout: float) -> Any:
    """One pull from a replica's API (its socket and token in its state directory: the
    replicas run on one machine, see docs/replicas.md)."""
    from meshgate.client import Client

    client = Client(Path(str(replica["home"])), retries=0)
    data = client.call("GET", f"/v1/accesslog/rows?after={after}&limit={limit}", timeout=timeout)
    return data["rows"], int(data["last"])


def entry_of(workload: str, body: dict[str, Any]) -> entries.Entry:
    """A row as another replica's store answered it -> the entry (same key as there)."""
    fields = {k: body.get(k) for k in ACCESS_LOG_FIELDS}
    if body.get("reason") is not None:
        fields[REASON_KEY] = body["reason"]
    reporter = entries.Reporter(
        str(body.get("pod") or ""),
        str(body.get("namespace") or ""),
        str(body.get("reporter") or "sidecar"),
        workload,
    )
    return entries.Entry(reporter, fields, SOURCE)


@dataclass
class _Unanswered:
    home: str
    since: float  # the first failure of this run of failures
    last: float  # the latest failure
    reason: str


def _clock_text(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).strftime("%H:%M:%S")


class Peers:
    def __init__(
        self,
        me: str,
        replicas: Replicas,
        fetch: Fetch = fetch_over_api,
        *,
        timeout: float = TIMEOUT,
        batch: int = BATCH,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.me = me
        self._replicas = replicas
        self._fetch = fetch
        self._timeout = timeout
        self._batch = batch
        self._clock = clock
        self._unanswered: dict[str, _Unanswered] = {}
        self._lock = threading.Lock()  # notes() is read by the API's threads
        self.received = 0

    def pull(self, store: Any, add: Callable[[list[entries.Entry]], None]) -> None:
        """One pass over every other registered replica (``store``: the sink's
        ``AccessLogStore``, for the cursors; ``add``: the sink's de-duplicating add)."""
        for replica in self._replicas():
            rid = str(replica.get("replica") or "")
            if not rid or rid == self.me or not replica.get("home"):
                continue
            now = self._clock()
            with self._lock:
                down = self._unanswered.get(rid)
            if down is not None and now - down.last < RETRY_AFTER:
                continue
            try:
                self._pull_one(rid, replica, store, add)
            except Exception as exc:  # a dead, stopped or busy replica: skipped, noted
                self._failed(rid, str(replica["home"]), now, exc)
            else:
                with self._lock:
                    gone = self._unanswered.pop(rid, None)
                if gone is not None:
                    log.info("access log: replica %s answers again", rid)

    def _pull_one(
        self,
        rid: str,
        replica: dict[str, Any],
        store: Any,
        add: Callable[[list[entries.Entry]], None],
    ) -> None:
        key = f"{CURSOR_PREFIX}{rid}"
        _, cursor = store.offset(key)
        rows, last = self._fetch(replica, cursor, self._batch, self._timeout)
        if last < cursor:  # that replica's store started again: read it from its start
            log.info("access log: replica %s has a new store; reading it from its start", rid)
            cursor = 0
            rows, last = self._fetch(replica, cursor, self._batch, self._timeout)
        if not rows:
            return
        batch = [entry_of(str(w), body) for _, w, body in rows]
        self.received += len(batch)
        add(batch)
        store.set_offset(key, 0, int(rows[-1][0]))

    def _failed(self, rid: str, home: str, now: float, exc: Exception) -> None:
        reason = _describe(exc, self._timeout)
        with self._lock:
            down = self._unanswered.get(rid)
            first = down is None
            self._unanswered[rid] = _Unanswered(
                home, now if down is None else down.since, now, reason
            )
        if first:
            log.warning("access log: replica %s (%s) skipped: %s", rid, home, reason)

    def notes(self) -> list[str]:
        """What the mesh-wide answers miss now: one line per replica that did not answer."""
        now = self._clock()
        out = []
        with self._lock:
            for rid, down in sorted(self._unanswered.items()):
                if now - down.last > NOTE_FOR:
                    continue
                out.append(
                    f"replica {rid} ({down.home}) did not answer ({down.reason}): the "
                    f"requests its proxies streamed to it since {_clock_text(down.since)} "
                    "UTC are missing here until it answers"
                )
        return out


def _describe(exc: Exception, timeout: float) -> str:
    from meshgate.client import ApiError, NotRunning, Unresponsive

    if isinstance(exc, Unresponsive | TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, NotRunning):
        return "not running"
    if isinstance(exc, ApiError):
        return f"HTTP {exc.status}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
