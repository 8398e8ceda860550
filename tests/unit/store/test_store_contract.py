"""The store contract (store/base.py), one suite run on SQLite and on a real etcd.

Revisions are compared, never spelled out: SQLite gives each written object its own
revision, etcd one per transaction; both only grow, and a later call's are higher.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from tests.unit.store.conftest import MakeStore

from meshgate.api.meta import ResourceKey
from meshgate.store import Compacted, ConfigStore
from meshgate.store.base import Event
from meshgate.store.sqlite import ObjectTooLarge
from meshgate.validation.limits import MAX_OBJECT_BYTES

GROUP = "networking.istio.io"


def se(name: str, host: str = "aliyun.com", namespace: str = "default") -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "ServiceEntry",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"hosts": [host], "location": "MESH_EXTERNAL"},
    }


def key(name: str, namespace: str = "default") -> ResourceKey:
    return ResourceKey(GROUP, "ServiceEntry", namespace, name)


def rv(obj: dict[str, Any]) -> int:
    return int(obj["metadata"]["resourceVersion"])


def test_create_update_unchanged_delete(store: ConfigStore) -> None:
    [c] = store.apply([se("a")])
    assert (c.key, c.action) == (key("a"), "created")
    meta = c.object["metadata"]
    assert meta["generation"] == 1 and rv(c.object) == store.revision()
    assert len(meta["uid"]) == 36 and meta["creationTimestamp"].endswith("Z")
    got = store.get(key("a"))
    assert got is not None and got.object == c.object
    assert (got.resource_version, got.generation) == (rv(c.object), 1)

    # What `get -o yaml` prints, applied back, changes nothing and takes no revision.
    before = store.revision()
    assert [x.action for x in store.apply([got.object])] == ["unchanged"]
    assert store.revision() == before

    [c2] = store.apply([se("a", host="www.aliyun.com")])
    assert c2.action == "configured"
    got = store.get(key("a"))
    assert got is not None and got.generation == 2 and got.resource_version > before
    assert got.object["metadata"]["uid"] == meta["uid"]
    assert got.object["metadata"]["creationTimestamp"] == meta["creationTimestamp"]

    [d] = store.delete([key("a")])
    assert (d.action, d.key) == ("deleted", key("a"))
    assert store.get(key("a")) is None and store.list() == []
    assert store.revision() > got.resource_version


def test_labels_configure_without_generation_and_server_fields_are_ignored(
    store: ConfigStore,
) -> None:
    forged = se("a")
    forged["metadata"].update(uid="forged", resourceVersion="77", generation=9)
    forged["metadata"]["creationTimestamp"] = "1999-01-01T00:00:00Z"
    meta = store.apply([forged])[0].object["metadata"]
    assert meta["uid"] != "forged" and meta["generation"] == 1
    assert meta["resourceVersion"] == str(store.revision())
    assert meta["creationTimestamp"] != "1999-01-01T00:00:00Z"
    labelled = se("a")
    labelled["metadata"]["labels"] = {"team": "egress"}
    assert store.apply([labelled])[0].action == "configured"
    got = store.get(key("a"))
    assert got is not None and got.generation == 1 and got.object["metadata"]["labels"]


def test_list_filters_and_sorts(store: ConfigStore) -> None:
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}}
    store.apply([se("b", namespace="z"), se("c"), se("a", namespace="z"), ns])
    assert [s.key.name for s in store.list()] == ["istio-system", "c", "a", "b"]
    assert [s.key.name for s in store.list(namespace="z")] == ["a", "b"]
    assert [s.key.name for s in store.list(group="", kind="Namespace")] == ["istio-system"]
    assert [s.key.name for s in store.list(kind="ServiceEntry", namespace="z")] == ["a", "b"]
    assert store.list(kind="Gateway") == []
    assert store.get(ResourceKey("", "Namespace", "", "istio-system")) is not None


def test_failing_apply_changes_nothing(store: ConfigStore) -> None:
    store.apply([se("a")])
    start = store.revision()
    heard: list[list[Event]] = []
    store.watch(heard.append)
    nameless = {"apiVersion": f"{GROUP}/v1", "kind": "ServiceEntry", "metadata": {}}
    with pytest.raises(ValueError, match="object 1"):
        store.apply([se("b"), nameless, se("a", host="other")])
    not_json = se("c")
    not_json["spec"]["bad"] = {1, 2}
    with pytest.raises(ValueError, match="JSON"):
        store.apply([se("d"), not_json])
    huge = se("e")
    huge["spec"]["blob"] = "x" * (MAX_OBJECT_BYTES + 1)
    with pytest.raises(ObjectTooLarge, match="ServiceEntry default/e: object too large"):
        store.apply([se("f"), huge])
    assert [s.key.name for s in store.list()] == ["a"]
    assert store.revision() == start and heard == [] and store.events_since(start) == []


def test_dry_run_reports_and_writes_nothing(store: ConfigStore) -> None:
    store.apply([se("a")])
    start = store.revision()
    changes = store.apply([se("a", host="x"), se("b")], dry_run=True)
    assert [c.action for c in changes] == ["configured", "created"]
    assert [c.action for c in store.delete([key("a")], dry_run=True)] == ["deleted"]
    assert store.revision() == start and [s.key.name for s in store.list()] == ["a"]


def test_duplicates_in_one_apply_are_applied_in_order(store: ConfigStore) -> None:
    changes = store.apply([se("a"), se("a"), se("a", host="x")])
    assert [c.action for c in changes] == ["created", "unchanged", "configured"]
    got = store.get(key("a"))
    assert got is not None and got.object["spec"]["hosts"] == ["x"] and got.generation == 2


def test_delete_missing_is_atomic_unless_missing_ok(store: ConfigStore) -> None:
    store.apply([se("a")])
    with pytest.raises(KeyError, match="ghost"):
        store.delete([key("a"), key("ghost")])
    assert store.get(key("a")) is not None
    changes = store.delete([key("a"), key("ghost"), key("a")], missing_ok=True)
    assert [c.key.name for c in changes] == ["a"]


def test_update_status(store: ConfigStore) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"}}
    [created] = store.apply([pod])
    pkey = ResourceKey("", "Pod", "default", "p")
    updated = store.update_status(pkey, {"podIP": "10.1.0.5", "phase": "Running"})
    assert updated.generation == 1 and updated.resource_version > rv(created.object)
    assert updated.object["metadata"]["resourceVersion"] == str(updated.resource_version)
    assert store.get(pkey) == updated
    # The same status again is not a write: no revision, no event.
    assert store.update_status(pkey, {"phase": "Running", "podIP": "10.1.0.5"}) == updated
    assert store.revision() == updated.resource_version
    # Re-applying the spec keeps the controller's status; history has only the apply.
    assert store.apply([pod])[0].action == "unchanged"
    got = store.get(pkey)
    assert got is not None and got.object["status"]["podIP"] == "10.1.0.5"
    assert [h.resource_version for h in store.history(pkey)] == [rv(created.object)]
    with pytest.raises(KeyError):
        store.update_status(ResourceKey("", "Pod", "default", "nope"), {})


def test_history_keeps_last_n_including_deletions(make_store: MakeStore) -> None:
    s = make_store(history_limit=3)
    writes = [rv(s.apply([se("a", host=f"h{i}.com")])[0].object) for i in range(5)]
    s.apply([se("b")])
    s.delete([key("a")])
    hist = s.history(key("a"))
    assert [h.resource_version for h in hist] == [*writes[3:], s.revision()]
    assert [h.deleted for h in hist] == [False, False, True]
    assert [h.created for h in hist] == [False, False, False]
    assert hist[0].object["spec"]["hosts"] == ["h3.com"]
    assert hist[-1].object["metadata"]["resourceVersion"] == str(writes[-1])
    assert len(s.history(key("b"))) == 1 and s.history(key("b"))[0].created


def test_rollback_and_history_across_delete_and_recreate(store: ConfigStore) -> None:
    r1 = rv(store.apply([se("a", host="one.com")])[0].object)
    store.apply([se("a", host="two.com")])
    store.delete([key("a")])
    store.apply([se("a", host="two.com")])
    hist = store.history(key("a"))
    assert [(h.generation, h.deleted) for h in hist] == [
        (1, False),
        (2, False),
        (2, True),
        (1, False),
    ]
    revs = [h.resource_version for h in hist]
    assert revs == sorted(set(revs)) and revs[0] == r1
    assert hist[3].object["metadata"]["uid"] != hist[0].object["metadata"]["uid"]
    # Rolling back writes the old version again as a new revision.
    change = store.rollback(key("a"), r1)
    assert change.action == "configured" and rv(change.object) > revs[-1]
    got = store.get(key("a"))
    assert got is not None and got.object["spec"]["hosts"] == ["one.com"]
    assert store.history(key("a"))[-1].resource_version == got.resource_version
    assert store.rollback(key("a"), got.resource_version).action == "unchanged"
    # Rolling back to the deletion deletes; doing it again changes nothing.
    assert store.rollback(key("a"), revs[2]).action == "deleted"
    assert store.get(key("a")) is None
    assert store.rollback(key("a"), revs[2]).action == "unchanged"
    assert store.rollback(key("a"), r1).action == "created"  # undo the delete
    with pytest.raises(KeyError):
        store.rollback(key("a"), 10**9)


def test_events_and_watch_batches(store: ConfigStore) -> None:
    start = store.revision()
    heard: list[list[Event]] = []
    unsubscribe = store.watch(heard.append)
    store.apply([se("a"), se("b")])
    store.apply([se("a", host="x"), se("b")])
    store.delete([key("a"), key("b")])
    unsubscribe()
    store.apply([se("c")])

    # One batch per call, in order, handed over before the call returned.
    assert [[(e.type, e.key.name) for e in batch] for batch in heard] == [
        [("ADDED", "a"), ("ADDED", "b")],
        [("MODIFIED", "a")],
        [("DELETED", "a"), ("DELETED", "b")],
    ]
    flat = [e.revision for batch in heard for e in batch]
    assert flat == sorted(flat) and heard[1][0].revision > heard[0][-1].revision
    polled = store.events_since(start)
    assert [(e.type, e.key.name) for e in polled] == [
        ("ADDED", "a"),
        ("ADDED", "b"),
        ("MODIFIED", "a"),
        ("DELETED", "a"),
        ("DELETED", "b"),
        ("ADDED", "c"),
    ]
    assert [e.revision for e in polled[:5]] == flat
    assert polled[2].object["spec"]["hosts"] == ["x"]
    assert polled[3].object["metadata"]["resourceVersion"] == str(polled[2].revision)
    after = heard[0][-1].revision
    assert [e.key.name for e in store.events_since(after)] == ["a", "a", "b", "c"]
    assert store.events_since(store.revision()) == []
    assert store.events_since(store.revision() + 100) == []


def test_broken_watcher_does_not_break_commit_or_others(store: ConfigStore) -> None:
    def broken(events: list[Event]) -> None:
        raise RuntimeError("subscriber bug")

    heard: list[list[Event]] = []
    store.watch(broken)
    store.watch(heard.append)
    assert store.apply([se("a")])[0].action == "created"
    assert len(heard) == 1 and store.get(key("a")) is not None


def test_watcher_may_read_the_store(store: ConfigStore) -> None:
    seen: list[int] = []
    store.watch(lambda events: seen.append(len(store.list())))
    store.apply([se("a"), se("b")])
    assert seen == [2]


def test_another_store_sees_every_commit_by_polling(make_store: MakeStore) -> None:
    writer, reader = make_store(), make_store()
    start = reader.revision()
    writer.apply([se("a"), se("b")])
    writer.delete([key("a")])
    assert reader.revision() == writer.revision()
    assert [(e.type, e.key.name) for e in reader.events_since(start)] == [
        ("ADDED", "a"),
        ("ADDED", "b"),
        ("DELETED", "a"),
    ]
    assert [s.key.name for s in reader.list()] == ["b"]


def test_concurrent_writers_lose_no_update(make_store: MakeStore) -> None:
    # Each write changes the spec, so each must bump generation once: a writer that
    # planned on a stale read and still committed would leave the count short.
    first = make_store()
    first.apply([se("a", host="start.com")])
    writers, per_writer = 4, 8
    errors: list[BaseException] = []

    def write(w: int) -> None:
        s = make_store()
        try:
            for i in range(per_writer):
                assert s.apply([se("a", host=f"w{w}-{i}.com")])[0].action == "configured"
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    got = first.get(key("a"))
    assert got is not None and got.generation == 1 + writers * per_writer


def test_compacted_history_is_reported(backend: str, make_store: MakeStore) -> None:
    s = make_store(event_limit=3)
    start = s.revision()
    for i in range(6):
        s.apply([se(f"n{i}")])
    if backend == "etcd":
        from tests.unit.store.test_store_etcd import compact

        compact(s)
    with pytest.raises(Compacted, match=f"events after revision {start} are no longer kept"):
        s.events_since(start)
    # Listing again and polling from the store's revision works.
    assert len(s.list()) == 6 and s.events_since(s.revision()) == []


def test_one_call_of_many_objects_is_one_batch_in_the_call_order(store: ConfigStore) -> None:
    names = [f"se-{i:03d}" for i in range(150)]  # more than etcd's default ops per txn
    heard: list[list[Event]] = []
    store.watch(heard.append)
    store.apply([se(n) for n in reversed(names)])
    start = store.revision()
    store.delete([key(n) for n in names[::2]] + [key(n) for n in names[1::2]])
    assert len(heard) == 2
    assert [e.key.name for e in heard[0]] == list(reversed(names))
    order = names[::2] + names[1::2]
    assert [e.key.name for e in heard[1]] == order
    assert [e.key.name for e in store.events_since(start - 1)][-len(order) :] == order
    assert store.list() == []
