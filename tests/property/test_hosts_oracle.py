"""Host matching against an independent oracle: label lists over a finite set of names.

``meshgate.model.hosts`` compares suffix strings; the oracle here splits names into DNS
labels and asks, over concrete names built from both patterns' labels, whether some name
is covered by both (``matches``) or every name covered by one is covered by the other
(``subset_of``). The names include, for each wildcard, its bare suffix (never covered)
and one and two fresh labels deeper, which is enough to witness any difference.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from meshgate.model import hosts

LABEL = st.sampled_from(["a", "b", "ab", "com", "x-1"])
NAME = st.lists(LABEL, min_size=1, max_size=4).map(".".join)
PATTERN = st.one_of(NAME, NAME.map(lambda n: "*." + n), st.just("*"))


def covered(pattern: str, name: str) -> bool:
    if pattern == "*":
        return True
    want, got = pattern.split("."), name.split(".")
    if want[0] == "*":
        tail = want[1:]
        return len(got) > len(tail) and got[len(got) - len(tail) :] == tail
    return want == got


def universe(*patterns: str) -> set[str]:
    names = {"zz", "zz.zz"}
    for p in patterns:
        base = p.removeprefix("*.") if p != "*" else ""
        if not base:
            continue
        names |= {base, f"zz.{base}", f"zz.zz.{base}"}
    return names


@given(PATTERN, PATTERN)
def test_matches_agrees_with_oracle(a: str, b: str) -> None:
    expected = any(covered(a, n) and covered(b, n) for n in universe(a, b))
    assert hosts.matches(a, b) == expected


@given(PATTERN, PATTERN)
def test_subset_of_agrees_with_oracle(a: str, b: str) -> None:
    expected = all(covered(b, n) for n in universe(a, b) if covered(a, n))
    assert hosts.subset_of(a, b) == expected


@given(PATTERN, PATTERN)
def test_more_specific_is_the_narrower(a: str, b: str) -> None:
    if hosts.matches(a, b):
        narrow = hosts.more_specific(a, b)
        assert narrow in (a, b)
        other = b if narrow == a else a
        assert hosts.subset_of(narrow, other) or not hosts.subset_of(other, narrow)


@given(st.lists(PATTERN, min_size=1, max_size=6))
def test_specificity_sorts_exact_before_wildcards_and_long_before_short(
    patterns: list[str],
) -> None:
    ordered = sorted(patterns, key=hosts.specificity_key)
    wild = [hosts.is_wildcard(p) for p in ordered]
    assert wild == sorted(wild)
    lengths = [len(p) for p in ordered if hosts.is_wildcard(p)]
    assert lengths == sorted(lengths, reverse=True)
