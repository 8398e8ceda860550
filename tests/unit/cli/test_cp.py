"""`meshgate cp`: which side of a copy is the pod, as kubectl tells them apart."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshgate.cli.cp import _split


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("sleep-1:/tmp/x", ("default", "sleep-1", "/tmp/x")),
        ("istio-system/gw-1:/etc/hosts", ("istio-system", "gw-1", "/etc/hosts")),
        ("sleep-1:", ("default", "sleep-1", ".")),
        ("./local.txt", None),
        ("/abs/path", None),
        ("a/b/c:/x", None),  # two slashes: a local path with a colon
        ("C:/x", None),  # not a pod name
    ],
)
def test_split(spec: str, expected: tuple[str, str, str] | None) -> None:
    assert _split(spec, "default") == expected


def test_an_existing_local_file_with_a_colon_stays_local(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pod:x").write_text("")
    assert _split("pod:x", "default") is None
