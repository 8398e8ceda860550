"""Property: any sequence of applies and deletes leaves the store equal to a dict model,
with generation and revision bookkeeping that matches the rules."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from meshgate.api.meta import ResourceKey
from meshgate.store import SqliteStore
from meshgate.store.canonical import user_view

names = st.sampled_from(["a", "b", "c"])
namespaces = st.sampled_from(["", "default", "prod"])
kinds = st.sampled_from([("v1", "ConfigMap"), ("networking.istio.io/v1", "ServiceEntry")])
specs = st.fixed_dictionaries({"hosts": st.lists(st.sampled_from(["x.com", "y.com"]), max_size=2)})
labels = st.none() | st.dictionaries(st.sampled_from(["app", "team"]), st.sampled_from(["1", "2"]))


@st.composite
def objects(draw: st.DrawFn) -> dict[str, Any]:
    api_version, kind = draw(kinds)
    meta: dict[str, Any] = {"name": draw(names)}
    namespace = draw(namespaces)
    if namespace:
        meta["namespace"] = namespace
    if (label_set := draw(labels)) is not None:
        meta["labels"] = label_set
    return {"apiVersion": api_version, "kind": kind, "metadata": meta, "spec": draw(specs)}


def key_of(obj: dict[str, Any]) -> ResourceKey:
    group = obj["apiVersion"].rpartition("/")[0]
    meta = obj["metadata"]
    return ResourceKey(group, obj["kind"], meta.get("namespace", ""), meta["name"])


operations = st.lists(
    st.one_of(
        st.tuples(st.just("apply"), st.lists(objects(), min_size=1, max_size=4)),
        st.tuples(st.just("delete"), st.lists(objects(), min_size=1, max_size=3)),
    ),
    max_size=12,
)


@given(operations)
def test_store_matches_dict_model(ops: list[tuple[str, list[dict[str, Any]]]]) -> None:
    model: dict[ResourceKey, tuple[dict[str, Any], int]] = {}  # key -> (object, generation)
    writes = 0
    with tempfile.TemporaryDirectory() as tmp, SqliteStore(Path(tmp) / "p.db") as store:
        for op, objs in ops:
            if op == "apply":
                for obj in objs:
                    key = key_of(obj)
                    old = model.get(key)
                    if old is None:
                        model[key] = (obj, 1)
                        writes += 1
                    elif old[0] != obj:
                        bump = old[0]["spec"] != obj["spec"]
                        model[key] = (obj, old[1] + bump)
                        writes += 1
                store.apply(objs)
            else:
                keys = [key_of(o) for o in objs]
                writes += len({k for k in keys if k in model})
                for k in keys:
                    model.pop(k, None)
                store.delete(keys, missing_ok=True)

            listed = store.list()
            assert [s.key for s in listed] == sorted(model)
            for s in listed:
                obj, generation = model[s.key]
                assert user_view(s.object) == obj
                assert s.generation == generation == s.object["metadata"]["generation"]
                assert s.object["metadata"]["resourceVersion"] == str(s.resource_version)
            assert store.revision() == writes
            assert len(store.events_since(0)) == writes
