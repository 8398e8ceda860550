"""Bytes from a file or stdin, UTF-8 or not, give resources or problems, never a traceback.

A problem's line is a line of the text as an editor shows it (``editor_lines``), a bad
byte shown as one character. Stdin is a real one: a text stream over the bytes, decoding
with ``surrogateescape`` as Python's stdin does, so reading it as text would hand the
parser lone surrogates.
"""

from __future__ import annotations

import io
import sys
import tempfile
from pathlib import Path
from unittest import mock

from hypothesis import example, given
from hypothesis import strategies as st
from tests.property.editor_lines import line_count

from meshgate.analysis.inputs import read_files
from meshgate.api.decode import decode_paths

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = (ROOT / "examples" / "walkthrough" / "1-sleep.yaml").read_bytes()
BAD = [b"\xff", b"\xe9", b"\xed\xa0\x80", b"\xc3", b"\x80", b"\xef\xbb\xbf", b"\x00", b"\r"]


@st.composite
def damaged(draw: st.DrawFn) -> bytes:
    data = SAMPLE
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.sampled_from(BAD)) + data[at:]
    return data


DATA = st.binary(max_size=60) | damaged()


def lines_of(data: bytes) -> int:
    return line_count(data.decode("utf-8", "replace"))


def stdin(data: bytes) -> io.TextIOWrapper:
    return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="surrogateescape")


@given(data=DATA)
@example(data=b"apiVersion: v1\r\nkind: Service\r\nmetadata: {name: a\xff}\r\n")
def test_stdin_bytes_give_problems_on_their_lines(data: bytes) -> None:
    last = lines_of(data)
    with mock.patch.object(sys, "stdin", stdin(data)):
        problems = decode_paths(["-"]).problems
    assert all(p.line is None or 1 <= p.line <= last for p in problems), (problems, last)
    with mock.patch.object(sys, "stdin", stdin(data)):
        notes = read_files(["-"]).notes
    assert all(n.line is None or 1 <= n.line <= last for n in notes), (notes, last)


@given(data=DATA)
def test_file_bytes_give_problems_on_their_lines(data: bytes) -> None:
    last = lines_of(data)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f.yaml"
        path.write_bytes(data)
        problems = decode_paths([str(path)]).problems
        notes = read_files([str(path)]).notes
    assert all(p.line is None or 1 <= p.line <= last for p in problems), (problems, last)
    assert all(n.line is None or 1 <= n.line <= last for n in notes), (notes, last)
