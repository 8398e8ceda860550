"""Several writers on one database: threads sharing a store, threads and processes each
with their own connection. Every write must land once, with a unique revision."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

from meshgate.store import SqliteStore

WRITES = 40

WRITER = textwrap.dedent(
    """
    import sys
    from meshgate.store import SqliteStore
    path, prefix, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with SqliteStore(path) as store:
        for i in range(count):
            store.apply([{"apiVersion": "v1", "kind": "ConfigMap",
                          "metadata": {"name": f"{prefix}-{i}", "namespace": "default"},
                          "data": {"i": str(i)}}])
    """
)


def cm(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {}}


def check_all_landed(path: Path, prefixes: list[str]) -> None:
    with SqliteStore(path) as store:
        names = sorted(s.key.name for s in store.list())
        assert names == sorted(f"{p}-{i}" for p in prefixes for i in range(WRITES))
        total = WRITES * len(prefixes)
        assert store.revision() == total
        assert sorted(s.resource_version for s in store.list()) == list(range(1, total + 1))
        assert [e.revision for e in store.events_since(0)] == list(range(1, total + 1))


def test_threads_sharing_one_store(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    errors: list[BaseException] = []
    with SqliteStore(path) as store:

        def writer(prefix: str) -> None:
            try:
                for i in range(WRITES):
                    store.apply([cm(f"{prefix}-{i}")])
                    store.list()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(f"t{n}",)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    check_all_landed(path, [f"t{n}" for n in range(4)])


def test_threads_with_own_connections(tmp_path: Path) -> None:
    path = tmp_path / "own.db"
    SqliteStore(path).close()
    errors: list[BaseException] = []

    def writer(prefix: str) -> None:
        try:
            with SqliteStore(path) as store:
                for i in range(WRITES):
                    store.apply([cm(f"{prefix}-{i}")])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(f"c{n}",)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    check_all_landed(path, [f"c{n}" for n in range(3)])


def test_two_processes_and_a_poller(tmp_path: Path) -> None:
    path = tmp_path / "procs.db"
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), f"p{n}", str(WRITES)])
        for n in range(2)
    ]
    try:
        # Poll from this process while the others write: what we see only grows, in order.
        with SqliteStore(path) as store:
            seen = 0
            while any(p.poll() is None for p in procs):
                events = store.events_since(seen)
                assert [e.revision for e in events] == list(range(seen + 1, seen + 1 + len(events)))
                seen += len(events)
        for p in procs:
            assert p.wait(timeout=60) == 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    check_all_landed(path, ["p0", "p1"])
