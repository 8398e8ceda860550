"""Replicas read each other's access-log stores: a request streamed to one replica is in
every replica's store once (and counted once there); a replica that does not answer is
skipped with a note, and read from where it stopped when it answers again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from envoy.data.accesslog.v3 import accesslog_pb2 as al

from meshgate.client import Unresponsive
from meshgate.telemetry import entries, peers
from meshgate.telemetry.sink import Sink
from meshgate.telemetry.store import AccessLogStore, Query, connect, local_rows, query
from meshgate.translate.accesslog import REASON_KEY

GW = entries.Reporter(
    "istio-egressgateway-abc12-xyz9", "istio-system", "gateway", "istio-egressgateway"
)


def _entry(n: int, reason: str | None = None) -> entries.Entry:
    e = al.HTTPAccessLogEntry(protocol_version=al.HTTPAccessLogEntry.HTTP11)
    c = e.common_properties
    c.start_time.FromMilliseconds(1_765_000_000_000 + n)
    c.downstream_remote_address.socket_address.address = "10.34.0.10"
    c.downstream_remote_address.socket_address.port_value = 40000 + n
    c.upstream_cluster = "outbound|80||aliyun.com"
    e.request.authority = "aliyun.com"
    e.request.request_id = f"rid-{n}"
    e.response.response_code.value = 403 if reason else 301
    entry = entries.from_http(e, GW)
    if reason:
        entry.fields[REASON_KEY] = reason
    return entry


class Replica:
    """One replica's store and sink, as the control plane opens them (no thread: the test
    runs the writer's passes)."""

    def __init__(self, tmp: Path, rid: str, others: list[dict[str, Any]]) -> None:
        self.path = tmp / rid / "access-log.db"
        self.path.parent.mkdir()
        self.counted: list[entries.Entry] = []
        self.clock = 1000.0
        self.answering = True
        self.peers = peers.Peers(rid, lambda: others, self.fetch, clock=lambda: self.clock)
        self.sink = Sink(
            AccessLogStore(self.path, max_bytes=10**8, max_age=3600),
            list,
            on_new=self.counted.extend,
            peers=self.peers,
        )
        self.reader = connect(self.path)
        self.sources: dict[str, Replica] = {}

    def fetch(self, replica: dict[str, Any], after: int, limit: int, timeout: float) -> Any:
        other = self.sources[replica["replica"]]
        if not other.answering:
            raise Unresponsive(Path(replica["home"]), "GET", timeout, 1)
        # What GET /v1/accesslog/rows answers: the other store's own rows, through JSON.
        return json.loads(json.dumps(local_rows(other.reader, after, limit)))

    def rows(self) -> list[dict[str, Any]]:
        return [e for _, e in query(self.reader, Query(workload="istio-egressgateway"))]


def _pair(tmp_path: Path) -> tuple[Replica, Replica]:
    registered = [
        {"replica": "aaaaaa", "home": str(tmp_path / "a")},
        {"replica": "bbbbbb", "home": str(tmp_path / "b")},
    ]
    a, b = Replica(tmp_path, "aaaaaa", registered), Replica(tmp_path, "bbbbbb", registered)
    a.sources = b.sources = {"aaaaaa": a, "bbbbbb": b}
    return a, b


def test_each_replica_stores_and_counts_the_other_s_requests_once(tmp_path: Path) -> None:
    a, b = _pair(tmp_path)
    a.sink.offer([_entry(1), _entry(2, reason="denied by AuthorizationPolicy x")])
    b.sink.offer([_entry(3)])
    a.sink.flush()
    b.sink.flush()
    b.sink.pull_peers()
    a.sink.pull_peers()
    assert [e["request_id"] for e in b.rows()] == ["rid-1", "rid-2", "rid-3"]
    assert [e["request_id"] for e in a.rows()] == ["rid-1", "rid-2", "rid-3"]
    assert b.rows()[1]["reason"] == "denied by AuthorizationPolicy x"
    assert b.rows()[1]["pod"] == GW.pod and b.rows()[1]["reporter"] == "gateway"
    assert sorted(e.key for e in b.counted) == sorted(e.key for e in a.counted)
    assert len(b.counted) == 3 and b.sink.counters.received_replica == 2
    # Pulled rows are not handed on, and nothing is pulled (or counted) twice.
    assert [r[2]["request_id"] for r in local_rows(b.reader, 0, 100)[0]] == ["rid-3"]
    b.sink.pull_peers()
    a.sink.pull_peers()
    assert len(b.counted) == 3 and len(a.counted) == 3
    # The same request arriving at B by its own stream later is not counted again.
    b.sink.offer([_entry(1)])
    b.sink.flush()
    assert len(b.counted) == 3


def test_a_replica_that_does_not_answer_is_skipped_with_a_note(tmp_path: Path) -> None:
    a, b = _pair(tmp_path)
    a.answering = False
    a.sink.offer([_entry(1)])
    a.sink.flush()
    b.sink.pull_peers()
    assert b.rows() == []
    (note,) = b.sink.notes()
    assert note.startswith(f"replica aaaaaa ({tmp_path / 'a'}) did not answer (no answer within")
    assert "missing here until it answers" in note
    assert b.sink.counters.replicas_unanswered == 1
    # Not asked again before RETRY_AFTER, then read from where B stopped.
    a.answering = True
    b.sink.pull_peers()
    assert b.rows() == [] and b.sink.notes() == [note]
    b.clock += peers.RETRY_AFTER
    b.sink.pull_peers()
    assert [e["request_id"] for e in b.rows()] == ["rid-1"]
    assert b.sink.notes() == [] and b.sink.counters.replicas_unanswered == 0


def test_the_cursor_survives_a_restart_and_a_new_store_is_read_from_its_start(
    tmp_path: Path,
) -> None:
    a, b = _pair(tmp_path)
    a.sink.offer([_entry(1), _entry(2)])
    a.sink.flush()
    b.sink.pull_peers()
    # B restarts: a new sink on the same store resumes after what it pulled.
    b2 = Replica.__new__(Replica)
    b2.__dict__.update(b.__dict__)
    b2.counted = []
    b2.sink = Sink(
        AccessLogStore(b.path, max_bytes=10**8, max_age=3600),
        list,
        on_new=b2.counted.extend,
        peers=b.peers,
    )
    b2.sink.pull_peers()
    assert b2.counted == []
    # A's store starts again (its state directory was made anew): B reads it from 0.
    fresh = AccessLogStore(tmp_path / "a-new.db", max_bytes=10**8, max_age=3600)
    fresh.add([_entry(7)])
    a.reader = connect(tmp_path / "a-new.db")
    b2.sink.pull_peers()
    assert [e.fields["request_id"] for e in b2.counted] == ["rid-7"]
