"""Property tests of Istio host matching (meshgate.model.hosts)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from meshgate.model import hosts

label = st.text(alphabet="abcxyz019-", min_size=1, max_size=4).filter(
    lambda s: not s.startswith("-")
)
names = st.lists(label, min_size=1, max_size=4).map(".".join)
wildcards = names.map(lambda n: "*." + n)
patterns = st.one_of(names, wildcards, st.just("*"))


@given(patterns, patterns)
def test_matches_is_symmetric(a: str, b: str) -> None:
    assert hosts.matches(a, b) == hosts.matches(b, a)


@given(patterns)
def test_reflexive(a: str) -> None:
    assert hosts.matches(a, a)
    assert hosts.subset_of(a, a)


@given(patterns, patterns)
def test_subset_implies_match(a: str, b: str) -> None:
    if hosts.subset_of(a, b):
        assert hosts.matches(a, b)


@given(patterns, patterns, patterns)
def test_subset_is_transitive(a: str, b: str, c: str) -> None:
    if hosts.subset_of(a, b) and hosts.subset_of(b, c):
        assert hosts.subset_of(a, c)


@given(patterns, patterns)
def test_mutual_subset_means_equal(a: str, b: str) -> None:
    if hosts.subset_of(a, b) and hosts.subset_of(b, a):
        assert a == b


@given(names)
def test_wildcard_never_matches_bare_suffix(name: str) -> None:
    assert not hosts.matches("*." + name, name)
    assert not hosts.subset_of(name, "*." + name)


@given(label, names)
def test_wildcard_matches_any_deeper_name(first: str, suffix: str) -> None:
    assert hosts.matches("*." + suffix, f"{first}.{suffix}")
    assert hosts.subset_of(f"{first}.{suffix}", "*." + suffix)
    assert hosts.subset_of(f"{first}.x.{suffix}", "*." + suffix)


@given(patterns)
def test_star_covers_everything(a: str) -> None:
    assert hosts.subset_of(a, "*")
    assert hosts.matches(a, "*")


@given(names, names)
def test_concrete_names_match_only_when_equal(a: str, b: str) -> None:
    assert hosts.matches(a, b) == (a == b)


@given(label, names)
def test_label_boundary_respected(first: str, suffix: str) -> None:
    # "*.foo.com" must not match "xfoo.com": the wildcard covers whole labels only.
    glued = first + suffix
    assert not hosts.matches("*." + suffix, glued) or glued.endswith("." + suffix)


@given(patterns, patterns)
def test_more_specific_is_subset_of_both_when_nested(a: str, b: str) -> None:
    if hosts.subset_of(a, b) or hosts.subset_of(b, a):
        narrow = hosts.more_specific(a, b)
        assert hosts.subset_of(narrow, a) and hosts.subset_of(narrow, b)


@given(label, label)
def test_short_name_expansion(name: str, ns: str) -> None:
    full = hosts.expand_short_name(name, ns)
    assert full == f"{name}.{ns}.svc.cluster.local"
    assert hosts.expand_short_name(full, "other") == full
    assert name in hosts.short_forms(full, ns)
    assert name not in hosts.short_forms(full, ns + "x")
