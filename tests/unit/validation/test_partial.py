"""Every problem at once: the rules also judge what could be read of a refused document."""

from __future__ import annotations

from meshgate.api.decode import decode_text
from meshgate.validation.partial import refused_problems

SE = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: se}
spec:
  hosts: [%(host)s]
  ports: [{number: %(port)s, name: http, protocol: HTTP}]
  resolution: %(resolution)s
%(extra)s"""


def problems(text: str) -> list[tuple[str, str, int | None]]:
    result = decode_text(text, "se.yaml")
    found = result.problems + refused_problems(result.refused)
    return [(p.code or "", p.field or "", p.line) for p in found]


def se(
    host: str = "a.example.com", port: str = "80", resolution: str = "DNS", extra: str = ""
) -> str:
    return SE % {"host": host, "port": port, "resolution": resolution, "extra": extra}


def test_a_bad_enum_and_a_bad_port_in_one_run() -> None:
    assert problems(se(port="99999", resolution="DNSS")) == [
        ("MG0008", "spec.resolution", 7),
        ("MG1003", "spec.ports[0].number", 6),
    ]


def test_rules_do_not_judge_a_value_that_was_left_out() -> None:
    # Without its resolution the entry would be NONE, which refuses endpoints (MG1007):
    # that would judge a default the user never wrote.
    extra = "  endpoints: [{address: 1.2.3.4}]\n"
    assert problems(se(resolution="DNSS", extra=extra)) == [("MG0008", "spec.resolution", 7)]


def test_a_missing_required_field_still_lets_the_rest_be_judged() -> None:
    text = se(host='"*"', port='"eighty"')
    assert problems(text) == [
        ("MG0007", "spec.ports[0].number", 6),
        ("MG1002", "spec.hosts[0]", 5),
    ]


def test_a_document_without_problems_of_its_own_adds_nothing() -> None:
    assert problems(se()) == []
    assert problems("apiVersion: v1\nkind: Nope\nmetadata: {name: x}\n")[0][0] == "MG0004"
