"""Mesh VirtualServices for a host in Istio's order (``model.meshvs``): visibility tiers,
age order, exact hosts before wildcards for HTTP only."""

from __future__ import annotations

from typing import Any

from meshgate.model import meshvs


def _vs(name: str, ns: str, created: str, export: list[str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"hosts": ["a.example.com"]}
    if export is not None:
        spec["exportTo"] = export
    return {
        "metadata": {"name": name, "namespace": ns, "creationTimestamp": created},
        "spec": spec,
    }


def _names(found: tuple[Any, ...]) -> list[str]:
    return [vs["metadata"]["name"] for vs in found]


def test_tiers_private_then_exported_then_public() -> None:
    public = _vs("public", "other", "2019-01-01T00:00:00Z")
    named = _vs("named", "other", "2019-06-01T00:00:00Z", ["team"])
    private = _vs("private", "team", "2024-01-01T00:00:00Z", ["."])
    own_by_name = _vs("own", "team", "2025-01-01T00:00:00Z", ["team"])
    hidden = _vs("hidden", "other", "2018-01-01T00:00:00Z", ["~"])
    elsewhere = _vs("elsewhere", "other", "2018-01-01T00:00:00Z", ["."])
    found = meshvs.for_l4(
        [public, named, private, own_by_name, hidden, elsewhere], [], "a.example.com", "team"
    )
    assert _names(found) == ["private", "own", "named", "public"]


def test_same_tier_oldest_first_then_name_then_namespace() -> None:
    vss = [
        _vs("b", "x", "2020-01-01T00:00:00Z"),
        _vs("a", "y", "2020-01-01T00:00:00Z"),
        _vs("a", "x", "2020-01-01T00:00:00Z"),
        _vs("z", "x", "2010-01-01T00:00:00Z"),
    ]
    found = meshvs.for_l4(vss, [], "a.example.com", "team")
    assert [(v["metadata"]["name"], v["metadata"]["namespace"]) for v in found] == [
        ("z", "x"),
        ("a", "x"),
        ("a", "y"),
        ("b", "x"),
    ]


def test_default_export_to_applies_when_none_is_written() -> None:
    vs = _vs("mine", "other", "2020-01-01T00:00:00Z")
    assert meshvs.for_l4([vs], [], "a.example.com", "team", (".",)) == ()
    assert _names(meshvs.for_l4([vs], [], "a.example.com", "other", (".",))) == ["mine"]


def test_wildcards_join_l4_in_age_order_and_follow_exact_hosts_for_http() -> None:
    exact = _vs("exact", "x", "2024-01-01T00:00:00Z")
    broad = _vs("broad", "x", "2019-01-01T00:00:00Z")
    narrow = _vs("narrow", "x", "2020-01-01T00:00:00Z")
    unrelated = _vs("unrelated", "x", "2000-01-01T00:00:00Z")
    wild = [("*.com", broad), ("*.example.com", narrow), ("*.other.org", unrelated)]
    assert _names(meshvs.for_l4([exact], wild, "a.example.com", "x")) == [
        "broad",
        "narrow",
        "exact",
    ]
    assert _names(meshvs.for_http([exact], wild, "a.example.com", "x")) == [
        "exact",
        "narrow",
        "broad",
    ]
