"""``history`` and ``rollback`` across deletes, over the store and over the control plane's API."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import Result

from meshgate.api.meta import ResourceKey
from meshgate.cli.api_backend import ApiBackend
from meshgate.cli.backend import HistoryEntry, LocalBackend
from meshgate.cli.history import choose

Run = Callable[..., Result]
SE = "serviceentry.networking.istio.io/good-two"
KEY = ResourceKey("networking.istio.io", "ServiceEntry", "default", "good-two")


def se_yaml(host: str = "a.com") -> str:
    return f"""apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: good-two}}
spec:
  hosts: [{host}]
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  resolution: DNS
"""


def rows(result: Any) -> list[list[str]]:
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == SE and lines[1].split() == ["REVISION", "GENERATION", "CHANGE"]
    return [line.split() for line in lines[2:]]


def apply(mg: Run, tmp_path: Path, host: str = "a.com") -> None:
    path = tmp_path / f"se-{host}.yaml"
    path.write_text(se_yaml(host))
    result = mg("apply", "-f", str(path))
    assert result.exit_code == 0, result.stderr


def hosts(mg: Run) -> list[str]:
    got = mg("get", "se", "good-two", "-o", "yaml")
    assert got.exit_code == 0, got.stderr
    return list(yaml.safe_load(got.stdout)["spec"]["hosts"])


def test_history_after_delete_and_recreate_lists_each_revision_once(
    mg: Run, tmp_path: Path
) -> None:
    apply(mg, tmp_path)
    assert mg("delete", "se", "good-two").exit_code == 0
    apply(mg, tmp_path)
    assert rows(mg("history", "se", "good-two")) == [
        ["1", "1", "created"],
        ["2", "1", "deleted"],
        ["3", "1", "created"],
    ]
    # The same content came back: nothing to undo, and the answer says so.
    rolled = mg("rollback", "se", "good-two")
    assert rolled.exit_code == 0, rolled.stderr
    assert rolled.stdout == f"{SE} skipped rollback (current version already matches revision 1)\n"
    assert mg("history", "se", "good-two").stdout.count("\n") == 5  # no new revision


def test_rollback_skips_a_recreation_to_the_last_different_version(mg: Run, tmp_path: Path) -> None:
    apply(mg, tmp_path, "a.com")
    apply(mg, tmp_path, "b.com")
    assert mg("delete", "se", "good-two").exit_code == 0
    apply(mg, tmp_path, "b.com")
    assert [r[2] for r in rows(mg("history", "se", "good-two"))] == [
        "created",
        "configured",
        "deleted",
        "created",
    ]
    rolled = mg("rollback", "se", "good-two")
    assert rolled.stdout == f"{SE} rolled back\n", rolled.stderr
    assert hosts(mg) == ["a.com"]


def test_rollback_of_a_deleted_object_restores_its_last_version(mg: Run, tmp_path: Path) -> None:
    apply(mg, tmp_path, "a.com")
    apply(mg, tmp_path, "b.com")
    assert mg("delete", "se", "good-two").exit_code == 0
    assert rows(mg("history", "se", "good-two"))[-1] == ["3", "2", "deleted"]
    dry = mg("rollback", "se", "good-two", "--dry-run")
    assert dry.stdout == f"{SE} rolled back (dry run)\n"
    assert mg("get", "se", "good-two").exit_code == 1
    rolled = mg("rollback", "se", "good-two")
    assert rolled.stdout == f"{SE} rolled back\n", rolled.stderr
    assert hosts(mg) == ["b.com"]  # the version that was deleted, not an older one
    assert rows(mg("history", "se", "good-two"))[-1] == ["4", "1", "created"]


def test_rollback_to_revision_refuses_a_deletion_row(mg: Run, tmp_path: Path) -> None:
    apply(mg, tmp_path)
    assert mg("delete", "se", "good-two").exit_code == 0
    refused = mg("rollback", "se", "good-two", "--to-revision", "2")
    assert refused.exit_code == 1
    assert refused.stderr.startswith("error: revision 2 records a deletion")
    missing = mg("rollback", "se", "good-two", "--to-revision", "9")
    assert missing.stderr == "error: unable to find the specified revision 9\n"
    assert mg("rollback", "se", "good-two", "--to-revision", "1").exit_code == 0
    assert hosts(mg) == ["a.com"]


def entry(revision: int, host: str, deleted: bool = False) -> HistoryEntry:
    obj = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "ServiceEntry",
        "metadata": {"name": "x", "namespace": "default", "resourceVersion": str(revision)},
        "spec": {"hosts": [host]},
    }
    return HistoryEntry(revision, 1, deleted, obj)


@pytest.mark.parametrize(
    ("entries", "revision", "matches"),
    [
        ([entry(1, "a"), entry(2, "b")], 1, False),
        ([entry(1, "a"), entry(2, "b"), entry(3, "b")], 1, False),  # a label-only change
        ([entry(1, "a"), entry(2, "a", True), entry(3, "a")], 1, True),
        ([entry(1, "a"), entry(2, "b"), entry(3, "b", True)], 2, False),
        ([entry(1, "a"), entry(2, "a", True), entry(3, "b"), entry(4, "b", True)], 3, False),
    ],
)
def test_choose_previous(entries: list[HistoryEntry], revision: int, matches: bool) -> None:
    target = choose(entries)
    assert target.entry is not None and not target.error
    assert (target.entry.revision, target.matches_current) == (revision, matches)


def test_choose_without_a_previous_version() -> None:
    assert choose([entry(1, "a")]).error == "no previous revision to roll back to"
    assert choose([entry(1, "a"), entry(2, "a")], to_revision=1).matches_current


def test_api_history_has_one_row_per_revision_with_deletions(api: tuple[Any, Any]) -> None:
    cp, client = api
    remote = ApiBackend(client)
    obj = yaml.safe_load(se_yaml())
    assert [c.action for c in remote.apply([obj], dry_run=False)] == ["created"]
    assert [c.action for c in remote.delete([KEY], dry_run=False)] == ["deleted"]
    remote.apply([obj], dry_run=False)
    got = remote.history(KEY)
    assert [(e.revision, e.generation, e.deleted) for e in got] == [
        (1, 1, False),
        (2, 1, True),
        (3, 1, False),
    ]
    # The API path and the in-process store give the same entries.
    local = LocalBackend(cp.home)
    try:
        assert got == local.history(KEY)
    finally:
        local.store.close()


def test_cli_history_and_rollback_over_the_api(
    mg: Run, api: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, client = api
    remote = ApiBackend(client)
    monkeypatch.setattr("meshgate.cli.context.get_backend", lambda: remote)
    remote.apply([yaml.safe_load(se_yaml("a.com"))], dry_run=False)
    remote.apply([yaml.safe_load(se_yaml("b.com"))], dry_run=False)
    remote.delete([KEY], dry_run=False)
    assert rows(mg("history", "se", "good-two")) == [
        ["1", "1", "created"],
        ["2", "2", "configured"],
        ["3", "2", "deleted"],
    ]
    rolled = mg("rollback", "se", "good-two")
    assert rolled.stdout == f"{SE} rolled back\n", rolled.stderr
    now = remote.history(KEY)[-1]
    assert not now.deleted and now.object["spec"]["hosts"] == ["b.com"]
    rolled = mg("rollback", "se", "good-two")
    assert rolled.stdout == f"{SE} rolled back\n", rolled.stderr
    assert remote.history(KEY)[-1].object["spec"]["hosts"] == ["a.com"]


def test_the_oldest_kept_version_is_not_called_created_once_older_ones_are_pruned(
    mg: Run, tmp_path: Path
) -> None:
    for i in range(12):  # the store keeps 10 versions: the creation is pruned
        apply(mg, tmp_path, f"h{i}.com")
    table = rows(mg("history", "se", "good-two"))
    assert len(table) == 10
    assert [r[2] for r in table] == ["configured"] * 10
    assert table[0][:2] == ["3", "3"]


def test_change_labels_of_an_older_store_without_creation_marks() -> None:
    from meshgate.cli.history import _change

    def entry(rev: int, gen: int, deleted: bool = False) -> HistoryEntry:
        return HistoryEntry(rev, gen, deleted, {})

    pruned = [entry(5, 4), entry(6, 5), entry(7, 5, deleted=True), entry(8, 1)]
    assert [_change(pruned, i) for i in range(4)] == [
        "configured",
        "configured",
        "deleted",
        "created",
    ]
    assert _change([entry(1, 1)], 0) == "created"
