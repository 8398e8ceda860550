"""Label selectors parse and match as Kubernetes' do."""

from __future__ import annotations

import pytest

from meshgate.cli.selector import parse_selector

LABELS = {"app": "sleep", "tier": "web", "version": "v1"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", True),
        ("app=sleep", True),
        ("app==sleep", True),
        ("app=other", False),
        ("app!=other", True),
        ("missing!=x", True),
        ("app", True),
        ("!app", False),
        ("!missing", True),
        ("tier in (web, db)", True),
        ("tier notin (web,db)", False),
        ("missing notin (a)", True),
        ("app=sleep,tier=web", True),
        ("app=sleep,tier=db", False),
        ("app=sleep, version in (v1,v2), !gone", True),
    ],
)
def test_matches(text: str, expected: bool) -> None:
    assert parse_selector(text).matches(LABELS) is expected


def test_none_labels_match_only_negative_requirements() -> None:
    assert parse_selector("!app").matches(None)
    assert not parse_selector("app").matches(None)


@pytest.mark.parametrize("text", ["app=a=b", "=x", "app in x", "app in (a b)", "a b"])
def test_malformed_selector_is_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        parse_selector(text)
