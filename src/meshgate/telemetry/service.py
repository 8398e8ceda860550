"""The telemetry stage as the control plane runs it: settings, sink, ALS and queries.

Rules of this module:
- Settings come from the control plane's environment, read once at start:
  ``MESHGATE_ACCESSLOG_MAX_BYTES`` (default 256 MiB), ``MESHGATE_ACCESSLOG_MAX_AGE``
  (seconds, default 7 days) and ``MESHGATE_ACCESSLOG_QUEUE`` (entries waiting to be
  written, default 10000; beyond it the stream's entries are dropped and counted, and the
  backfill stores them from the proxy's own log).
- Which pod reported, and whether it is a gateway, comes from the mesh's model (the pod's
  proxy-type annotation and labels), looked up by the authenticated node id or by the log
  file's pod.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshgate.model.proxy import PROXY_TYPE_ANNOTATION, parse_node_id
from meshgate.telemetry import entries
from meshgate.telemetry.peers import Peers
from meshgate.telemetry.sink import LogFiles, Sink
from meshgate.telemetry.store import AccessLogStore, Query, connect, db_path, local_rows, query
from meshgate.telemetry.top import HostRow, TopQuery, top_hosts

PROXY_CONTAINER = "istio-proxy"


@dataclass(frozen=True)
class Settings:
    max_bytes: int = 256 * 1024 * 1024
    max_age: float = 7 * 86400.0
    queue_size: int = 10_000

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        d = cls()
        return cls(
            max_bytes=int(env.get("MESHGATE_ACCESSLOG_MAX_BYTES", d.max_bytes)),
            max_age=float(env.get("MESHGATE_ACCESSLOG_MAX_AGE", d.max_age)),
            queue_size=int(env.get("MESHGATE_ACCESSLOG_QUEUE", d.queue_size)),
        )


def reporter_for(
    pods: Mapping[tuple[str, str], Any], namespace: str, name: str
) -> entries.Reporter | None:
    pod = pods.get((namespace, name))
    if pod is None:
        return None
    kind = "gateway" if pod.annotations.get(PROXY_TYPE_ANNOTATION) == "router" else "sidecar"
    return entries.Reporter(name, namespace, kind, entries.workload_of(name, dict(pod.labels)))


def identify_node(
    pods: Callable[[], Mapping[tuple[str, str], Any]],
) -> Callable[[str], entries.Reporter | None]:
    def identify(node_id: str) -> entries.Reporter | None:
        parsed = parse_node_id(node_id)
        return None if parsed is None else reporter_for(pods(), parsed.namespace, parsed.pod)

    return identify


def local_log_files(
    pods: Callable[[], Mapping[tuple[str, str], Any]],
    log_path: Callable[[str, str, str], Path],
) -> LogFiles:
    def files() -> list[tuple[entries.Reporter, Path]]:
        out = []
        current = pods()
        for namespace, name in sorted(current):
            reporter = reporter_for(current, namespace, name)
            if reporter is None:
                continue
            try:
                path = log_path(namespace, name, PROXY_CONTAINER)
            except Exception:
                continue  # no proxy in this pod, or it is gone
            out.append((reporter, path))
        return out

    return files


def open_sink(
    state_dir: Path,
    log_files: LogFiles,
    settings: Settings,
    on_new: Callable[[list[entries.Entry]], None] | None = None,
    peers: Peers | None = None,
) -> Sink:
    store = AccessLogStore(
        db_path(state_dir), max_bytes=settings.max_bytes, max_age=settings.max_age
    )
    return Sink(store, log_files, queue_size=settings.queue_size, on_new=on_new, peers=peers)


def replica_peers(home: Path, replicas: Callable[[], list[dict[str, Any]]]) -> Peers:
    """The other replicas to pull entries from (``replicas``: the membership's list)."""
    from meshgate.runtime.names import mesh_id

    return Peers(mesh_id(home), replicas)


class Reader:
    """Queries for the API: a connection of its own, one query at a time."""

    def __init__(self, state_dir: Path, notes: Callable[[], list[str]] = list) -> None:
        self._path = db_path(state_dir)
        # What the answers miss (replicas that did not answer: the sink's ``notes``).
        self.notes = notes
        self._conn: sqlite3.Connection | None = None
        # The API runs queries in worker threads; one connection serves one at a time.
        self._lock = threading.Lock()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = connect(self._path)
        return self._conn

    def query(self, q: Query) -> list[tuple[int, dict[str, Any]]]:
        with self._lock:
            return query(self._connection(), q)

    def local_rows(self, after: int, limit: int) -> tuple[list[Any], int]:
        with self._lock:
            return local_rows(self._connection(), after, limit)

    def top(self, q: TopQuery, now: float) -> list[HostRow]:
        with self._lock:
            return top_hosts(self._connection(), q, now)


def principal_of(snapshot: Callable[[], Any]) -> Callable[[entries.Entry], str | None]:
    """The reporting pod's SPIFFE identity (its service account in the mesh's trust domain),
    for ``source_principal``; None when the pod is gone from the model."""
    from meshgate.security.ca import spiffe_id

    def principal(entry: entries.Entry) -> str | None:
        snap = snapshot()
        pod = snap.pods.get((entry.reporter.namespace, entry.reporter.pod))
        if pod is None:
            return None
        return spiffe_id(snap.mesh.trust_domain, pod.namespace, pod.service_account)

    return principal
