"""Ownership through the store: controllers, garbage collection, admission and the start-up
migration keep same-named objects of two namespaces apart (no runtime: pods never start)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from meshgate.api.meta import ResourceKey
from meshgate.server import workloads as wl
from meshgate.server.admission import default_owner_uids
from meshgate.server.reconcile import Reconciler
from meshgate.store import ConfigStore, open_store

Obj = dict[str, Any]


class NoRuntime:
    """The reconciler's runtime, for the controller passes only: nothing runs."""

    def pod_states(self) -> list[Any]:
        return []


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ConfigStore]:
    s = open_store(tmp_path / "home")
    yield s
    s.close()


def reconciler(store: ConfigStore, tmp_path: Path) -> Reconciler:
    return Reconciler(tmp_path, store, NoRuntime(), tmp_path / "xds.sock")  # type: ignore[arg-type]


def deployment(namespace: str, replicas: int = 1) -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "sleep", "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "sleep"}},
            "template": {
                "metadata": {"labels": {"app": "sleep"}},
                "spec": {"containers": [{"name": "sleep", "image": "curl"}]},
            },
        },
    }


def pods(store: ConfigStore) -> dict[str, list[Obj]]:
    """namespace -> its pods."""
    out: dict[str, list[Obj]] = {}
    for s in store.list(kind="Pod"):
        out.setdefault(s.key.namespace, []).append(s.object)
    return out


def uid(store: ConfigStore, namespace: str, kind: str = "Deployment") -> str:
    group = "apps" if kind == "Deployment" else ""
    stored = store.get(ResourceKey(group, kind, namespace, "sleep"))
    assert stored is not None
    return str(stored.object["metadata"]["uid"])


def controllers(r: Reconciler) -> None:
    """One pass of what decides which objects exist (the runtime part left out)."""
    r._garbage_collect(r._objects())
    r._deployments(r._objects())
    r._deployment_status(r._objects())


def test_same_named_deployments_each_get_their_pod_and_scale_alone(
    store: ConfigStore, tmp_path: Path
) -> None:
    r = reconciler(store, tmp_path)
    store.apply([deployment("default"), deployment("other")])
    controllers(r)
    by_ns = pods(store)
    assert sorted(by_ns) == ["default", "other"] and all(len(p) == 1 for p in by_ns.values())
    for ns, (pod,) in by_ns.items():
        assert wl.uid_of(pod) and pod["metadata"]["ownerReferences"][0]["uid"] == uid(store, ns)
    default_pod = by_ns["default"][0]["metadata"]["uid"]

    store.apply([deployment("other", replicas=0)])
    for _ in range(3):  # and it stays so
        controllers(r)
        assert "other" not in pods(store)
        assert [p["metadata"]["uid"] for p in pods(store)["default"]] == [default_pod]
    status = store.get(ResourceKey("apps", "Deployment", "other", "sleep"))
    assert status is not None and status.object["status"]["replicas"] == 0


def test_deleting_an_owner_collects_its_dependents_only(store: ConfigStore, tmp_path: Path) -> None:
    r = reconciler(store, tmp_path)
    store.apply([deployment("default"), deployment("other")])
    controllers(r)
    kept = pods(store)["default"]
    store.delete([ResourceKey("apps", "Deployment", "other", "sleep")])
    controllers(r)
    assert pods(store) == {"default": kept}


def test_a_recreated_owner_does_not_adopt_the_old_ones_dependents(
    store: ConfigStore, tmp_path: Path
) -> None:
    r = reconciler(store, tmp_path)
    store.apply([deployment("default")])
    controllers(r)
    (old,) = pods(store)["default"]
    store.delete([ResourceKey("apps", "Deployment", "default", "sleep")])
    store.apply([deployment("default")])  # same name, a new uid, before any pass
    controllers(r)
    (new,) = pods(store)["default"]
    assert new["metadata"]["uid"] != old["metadata"]["uid"]
    assert new["metadata"]["ownerReferences"][0]["uid"] == uid(store, "default")


def _strip_owner_uids(store: ConfigStore) -> None:
    """Make the store look like one written before ownership was by uid."""
    legacy = []
    for s in store.list(kind="Pod"):
        refs = [
            {k: v for k, v in r.items() if k != "uid"}
            for r in s.object["metadata"]["ownerReferences"]
        ]
        legacy.append({**s.object, "metadata": {**s.object["metadata"], "ownerReferences": refs}})
    store.apply(legacy)


def test_migration_gives_old_state_the_owner_uid_of_its_namespace(
    store: ConfigStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    r = reconciler(store, tmp_path)
    store.apply([deployment("default"), deployment("other")])
    controllers(r)
    before = {ns: [p["metadata"]["uid"] for p in ps] for ns, ps in pods(store).items()}
    _strip_owner_uids(store)
    assert all(
        not ref.get("uid")
        for ps in pods(store).values()
        for p in ps
        for ref in p["metadata"]["ownerReferences"]
    )

    restarted = reconciler(store, tmp_path)
    with caplog.at_level(logging.INFO, logger="meshgate.reconcile"):
        restarted.adopt_owner_uids()
    for ns, (pod,) in pods(store).items():
        assert pod["metadata"]["ownerReferences"][0]["uid"] == uid(store, ns)
    # Adopted, not replaced: the same pods, and the next passes keep them.
    controllers(restarted)
    controllers(restarted)
    assert {ns: [p["metadata"]["uid"] for p in ps] for ns, ps in pods(store).items()} == before
    assert "Pod default/sleep-" in caplog.text and "given their owner's uid" in caplog.text
    # Nothing left to do on the next start.
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="meshgate.reconcile"):
        reconciler(store, tmp_path).adopt_owner_uids()
    assert caplog.text == ""


def test_migration_says_which_owners_are_gone(
    store: ConfigStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    r = reconciler(store, tmp_path)
    store.apply([deployment("other")])
    controllers(r)
    _strip_owner_uids(store)
    # The owner went while no control plane ran (nothing collected its pod).
    store.delete([ResourceKey("apps", "Deployment", "other", "sleep")])
    with caplog.at_level(logging.INFO, logger="meshgate.reconcile"):
        r.adopt_owner_uids()
    (pod,) = pods(store)["other"]
    name = pod["metadata"]["name"]
    assert f'Pod other/{name}: metadata.ownerReferences[0] names Deployment "sleep"' in caplog.text
    assert "its owner is gone, so it will be garbage-collected" in caplog.text
    controllers(r)
    assert pods(store) == {}


def test_admission_fills_owner_uids_or_refuses(store: ConfigStore) -> None:
    store.apply([deployment("default"), deployment("other")])

    def stored(group: str, kind: str) -> list[Obj]:
        return [s.object for s in store.list(group=group, kind=kind)]

    ref = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "sleep"}
    pod: Obj = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "other", "ownerReferences": [ref]},
        "spec": {"containers": [{"name": "c", "image": "curl"}]},
    }
    plain: Obj = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}
    out = default_owner_uids([plain, pod], stored)
    assert out[0] is plain
    assert out[1]["metadata"]["ownerReferences"][0]["uid"] == uid(store, "other")
    assert "uid" not in ref  # the input is not changed
    # Objects that name no owner without a uid pass as they are.
    assert default_owner_uids([plain], stored) == [plain]
    lost = {**pod, "metadata": {**pod["metadata"], "namespace": "nowhere"}}
    with pytest.raises(ValueError, match=r'Pod nowhere/p: .* "sleep" without a uid.* "nowhere"'):
        default_owner_uids([lost], stored)
