"""Lazy line indexes agree with an independent parser on every field path.

``meshgate.api.yamlsource`` parses with libyaml and builds a document's line tree only when
a line is asked for, by parsing the document's slice of the text again. The reference here
is PyYAML's pure-Python composer over the whole text: for every key and list item of every
document, both must give the same line. The reference counts lines as YAML 1.1 does (also at
NEL, LS and PS); its marks are turned into an editor's lines (``editor_lines``) from their
character offsets, which is what meshgate must report.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from tests.property.editor_lines import line_at
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from meshgate.api.yamlsource import Path, SourceDocument, iter_documents

KEYS = st.sampled_from(["name", "spec", "hosts", "ports", "a", "b-c", "80", "yes", "null", "x y"])
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.sampled_from(["", "on", "0o17", "1e3", "*.a.com", "a: b", "# no", "- x", "line\nbreak"]),
    # NEL, LS and PS end a line for YAML 1.1 (libyaml) but not for an editor.
    st.text(alphabet="ab 中文:-#\t'\"\x85\u2028\u2029", max_size=8),
)
VALUES: st.SearchStrategy[Any] = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(KEYS, inner, min_size=1, max_size=4)
    ),
    max_leaves=20,
)
DOCS = st.lists(st.dictionaries(KEYS, VALUES, min_size=1, max_size=5), min_size=1, max_size=4)


def reference_lines(text: str) -> list[dict[Path, int]]:
    """Per document: the 1-based line of every mapping key and sequence item."""
    out = []
    for root in yaml.compose_all(text, Loader=yaml.SafeLoader):
        if root is None:
            continue
        found: dict[Path, int] = {}
        _walk(text, root, (), found)
        out.append(found)
    return out


def _walk(text: str, node: Node, path: Path, found: dict[Path, int]) -> None:
    if isinstance(node, MappingNode):
        for key, value in node.value:
            assert isinstance(key, ScalarNode)
            part = yaml.safe_load(yaml.serialize(key))  # the key as the loader types it
            found[(*path, part)] = line_at(text, key.start_mark.index)
            _walk(text, value, (*path, part), found)
    elif isinstance(node, SequenceNode):
        for i, item in enumerate(node.value):
            found[(*path, i)] = line_at(text, item.start_mark.index)
            _walk(text, item, (*path, i), found)


def ours(text: str) -> list[SourceDocument]:
    docs = list(iter_documents(text))
    assert all(isinstance(d, SourceDocument) for d in docs), docs
    return [d for d in docs if isinstance(d, SourceDocument)]


def check(text: str) -> None:
    expected = reference_lines(text)
    docs = ours(text)
    assert len(docs) == len(expected)
    for doc, lines in zip(docs, expected, strict=True):
        for path, line in lines.items():
            assert doc.lines.line_of(path, exact=True) == line, (path, text)


@given(
    docs=DOCS,
    flow=st.sampled_from([False, None, True]),
    width=st.sampled_from([20, 80]),
    explicit=st.booleans(),
    pad=st.sampled_from(["", "\n", "# comment\n", "\n\n# 注释\n"]),
)
def test_lines_match_reference(
    docs: list[dict[Any, Any]], flow: bool | None, width: int, explicit: bool, pad: str
) -> None:
    parts = [
        yaml.safe_dump(d, default_flow_style=flow, width=width, allow_unicode=True) for d in docs
    ]
    text = pad + "".join(
        ("---\n" if explicit or i else "") + part + pad for i, part in enumerate(parts)
    )
    check(text)


@pytest.mark.parametrize("newline", ["\r\n", "\r"])
@given(docs=DOCS, bom=st.booleans())
def test_other_newlines_match_reference(
    newline: str, docs: list[dict[Any, Any]], bom: bool
) -> None:
    text = yaml.safe_dump_all(docs, default_flow_style=False)
    check(("\ufeff" if bom else "") + text.replace("\n", newline))


def test_awkward_document_starts() -> None:
    for text in [
        "--- !!map\n a: 1\n b:\n - 2\n",
        "--- {a: 1,\n  b: [2,\n   3]}\n--- {c: 4}\n",
        "--- &root\nkind: x\nspec: 1\n",
        "base: &b\n  x: 1\nother: *b\nlast:\n  - &c 2\n  - *c\n",
        "a: 1\n...\n---\nb:\n  c: |\n    text\n    more\n\n\n  d: 2\n",
        "\ufeffa: 1\nb: 2\n",
        "\ufeff--- {a: 1,\n b: [2,\n  3]}\n",
        "\ufeff--- !!map\r a: 1\r b:\r - 2\r",
        '# 中文注释\na: "多行\n  字符串"\nb: 2\n',
        'a: "x\u2028y"\nb: 1\n',
        'a: "x\x85y"\nb: [1,\u2029 2]\nc: 3\n',
        "a: |\r  x\r\r  y\rb: 1",
        "a: 1\r\nb:\r\n  c: 2\r\n",
        "a:\n- b: 1\n  c: 2\n- d: 3\n",
    ]:
        check(text)


def test_lines_are_an_editors_lines() -> None:
    # LS in a string is no line break for an editor (nor for YAML 1.2): b is on line 2.
    [doc] = ours('a: "x\u2028y"\nb:\r  c: 1\r')
    assert (doc.lines.line_of(("b",)), doc.lines.line_of(("b", "c"))) == (2, 3)


def test_lines_of_a_later_document_ignore_the_earlier_ones() -> None:
    text = "a: 1\n---\n\n\nb:\n  c: 2\n"
    second = ours(text)[1]
    assert second.lines.line_of(("b", "c")) == 6
    assert second.lines.line_of(("b", "missing")) == 5
    assert second.lines.line_of(("b", "missing"), exact=True) is None
