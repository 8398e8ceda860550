"""peek() parses the manifest once per write and sees every write, from any instance."""

from __future__ import annotations

from pathlib import Path

from meshgate.runtime.manifest import Manifest


def test_peek_is_parsed_once_per_write_and_sees_every_write(tmp_path: Path) -> None:
    a, b = Manifest(tmp_path), Manifest(tmp_path)
    assert a.peek()["sections"] == {}  # no file yet: the empty manifest
    a.set_section("pods", {"default/x": {"ip": "10.0.0.2"}})
    first = b.peek()
    assert first["sections"]["pods"] == {"default/x": {"ip": "10.0.0.2"}}
    assert b.peek() is first  # unchanged: the same parse, shared
    for i in range(3):  # same size each time: the write count tells versions apart
        a.set_section("pods", {"default/x": {"ip": f"10.0.0.{i}"}})
        assert b.peek_section("pods") == {"default/x": {"ip": f"10.0.0.{i}"}}
    assert b.read() is not b.peek()  # read() is a private copy
