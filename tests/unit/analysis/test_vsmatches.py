"""Unreachable rules (IST0130) and ineffective matches (IST0131)."""

from __future__ import annotations

from tests.unit.analysis.conftest import Run, codes

from meshgate.analysis import vsmatches


def vs(name: str, body: str) -> str:
    return f"""
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}}}
spec:
  hosts: [{name}]
{body}"""


ROUTE = "    route: [{destination: {host: a}}]\n"
CATCH_ALL = "  - route: [{destination: {host: a}}]\n"


def rule(match: str, name: str = "") -> str:
    named = f"name: {name}, " if name else ""
    return f"  - {{{named}match: {match}, route: [{{destination: {{host: a}}}}]}}\n"


def test_duplicate_match_makes_the_rule_unreachable(run: Run) -> None:
    body = (
        "  http:\n"
        + rule("[{uri: {exact: /a}}]", "first")
        + rule("[{name: again, uri: {exact: /a}}]", "second")
    )
    found = run(vs("dup", body), vsmatches.unreachable_rules)
    assert codes(found) == [
        ("IST0130", "VirtualService default/dup"),
        ("IST0131", "VirtualService default/dup"),
    ]
    assert sorted(m.text for m in found) == [
        'VirtualService rule "second" match "again" is not used '
        '(duplicate/overlapping match in rule "first").',
        'VirtualService rule "second" not used (all matches used by prior rules).',
    ]


def test_a_partly_duplicated_rule_is_only_ineffective(run: Run) -> None:
    body = (
        "  http:\n"
        + rule("[{uri: {exact: /a}}]")
        + rule("[{uri: {exact: /a}}, {uri: {exact: /b}}]")
    )
    found = run(vs("almost", body), vsmatches.unreachable_rules)
    assert codes(found) == [("IST0131", "VirtualService default/almost")]
    assert found[0].text.startswith("VirtualService rule #1 match #0 is not used")


def test_rules_after_a_catch_all_are_unreachable(run: Run) -> None:
    body = "  http:\n" + CATCH_ALL + rule("[{uri: {prefix: /x}}]") + CATCH_ALL
    found = run(vs("catchall", body), vsmatches.unreachable_rules)
    assert sorted(m.text for m in found) == [
        "VirtualService rule #1 not used (route without matches defined before).",
        "VirtualService rule #2 not used (only the last rule can have no matches).",
    ]


def test_earlier_prefix_covers_a_longer_one(run: Run) -> None:
    body = "  http:\n" + rule("[{uri: {prefix: /debug}}]") + rule("[{uri: {prefix: /debugs}}]")
    found = run(vs("overlap", body), vsmatches.unreachable_rules)
    assert [m.text for m in found] == [
        "VirtualService rule #1 match #0 of prefix /debugs is not used (duplicate/overlapping "
        "match in rule #0 of prefix /debug on #0)."
    ]
    # A different method on the later match keeps it reachable.
    distinct = body.replace("{prefix: /debugs}}", "{prefix: /debugs}, method: {exact: POST}}")
    assert run(vs("overlap", distinct), vsmatches.unreachable_rules) == []


def test_tcp_duplicates(run: Run) -> None:
    tcp = "  tcp:\n" + rule("[{port: 27017}]") + rule("[{port: 27017}]")
    found = run(vs("tcp", tcp), vsmatches.unreachable_rules)
    assert sorted(m.type.code for m in found) == ["IST0130", "IST0131"]


def test_distinct_matches_are_clean(run: Run) -> None:
    body = "  http:\n" + rule("[{uri: {exact: /a}}]") + rule("[{uri: {exact: /b}}]") + CATCH_ALL
    assert run(vs("clean", body), vsmatches.unreachable_rules) == []
