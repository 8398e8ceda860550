"""YAML typed in the console: the CLI's checks, each problem at its line; templates valid."""

from __future__ import annotations

import pytest
import yaml

from meshgate.console import yamledit
from meshgate.console.kinds import PAGES, SE_EXTERNAL


@pytest.mark.parametrize(("slug", "name"), [(p.slug, name) for p in PAGES for name in p.templates])
def test_every_template_applies_as_it_is(slug: str, name: str) -> None:
    page = next(p for p in PAGES if p.slug == slug)
    checked = yamledit.check(page.templates[name], page.default_namespace, page.kind)
    assert checked.problems == []
    assert [o["kind"] for o in checked.objects] == [page.kind]


def test_the_seed_serviceentry_is_the_first_template() -> None:
    (obj,) = yamledit.check(SE_EXTERNAL, "default", "ServiceEntry").objects
    assert obj["metadata"] == {"name": "external-svc-http", "namespace": "default"}
    assert obj["spec"]["hosts"] == ["aliyun.com"]
    assert obj["spec"]["ports"] == [{"number": 80, "name": "http", "protocol": "HTTP"}]


def test_problems_carry_their_lines_and_nothing_is_returned_as_ok() -> None:
    text = SE_EXTERNAL.replace("number: 80", "number: eighty").replace(
        "resolution: DNS", "resolution: DNSX"
    )
    checked = yamledit.check(text, "default", "ServiceEntry")
    lines = {p.line: p for p in checked.errors}
    assert set(lines) == {10, 13}
    assert lines[10].field == "spec.ports[0].number"
    assert "DNSX" in lines[13].message
    view = yamledit.annotate(text, checked.problems)
    assert view.lines[12].text == "  resolution: DNSX"
    assert [p.line for p in view.lines[12].problems] == [13]
    assert view.unplaced == []


def test_syntax_errors_and_empty_text() -> None:
    checked = yamledit.check("kind: [\n", "default", "ServiceEntry")
    assert checked.errors and checked.errors[0].code == "MG0001"
    assert checked.errors[0].line is not None
    empty = yamledit.check("", "default", "ServiceEntry")
    assert [p.message for p in empty.errors] == ["no objects in the text"]


def test_a_page_takes_its_own_kind_only() -> None:
    gateway = next(p for p in PAGES if p.slug == "gateways").templates
    text = SE_EXTERNAL + "---\n" + next(iter(gateway.values()))
    checked = yamledit.check(text, "default", "ServiceEntry")
    (error,) = checked.errors
    assert error.line == 15 and "not Gateway" in error.message


def test_editable_leaves_out_what_the_server_sets() -> None:
    stored = {
        "apiVersion": "networking.istio.io/v1beta1",
        "kind": "ServiceEntry",
        "metadata": {
            "name": "x",
            "namespace": "default",
            "resourceVersion": "7",
            "uid": "u",
            "generation": 2,
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {"a": "b"},
        },
        "spec": {"hosts": ["aliyun.com"]},
        "status": {"x": 1},
    }
    back = yaml.safe_load(yamledit.editable(stored))
    assert back == {
        "apiVersion": "networking.istio.io/v1beta1",
        "kind": "ServiceEntry",
        "metadata": {"name": "x", "namespace": "default", "labels": {"a": "b"}},
        "spec": {"hosts": ["aliyun.com"]},
    }


def test_the_gateway_form_makes_the_seeds_istiogateway() -> None:
    ports, reasons = yamledit.parse_ports("80 HTTP\n443/tls")
    assert (ports, reasons) == ([(80, "HTTP"), (443, "TLS")], [])
    text = yamledit.egress_gateway("istio-egressgateway", "istio-system", 3, ports)
    (obj,) = yamledit.check(text, "istio-system", "IstioGateway").objects
    assert obj["spec"]["gatewayType"] == "egress"
    assert obj["spec"]["replicaCount"] == 3
    assert obj["spec"]["ports"][0] == {
        "name": "http-0", "port": 80, "protocol": "TCP", "targetPort": 80
    }  # fmt: skip


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("eighty", "want a number from 1 to 65535"),
        ("70000 HTTP", "want a number from 1 to 65535"),
        ("80 SMTP", "protocol SMTP is not one of"),
        ("", "give at least one port"),
    ],
)
def test_bad_ports_are_named(text: str, reason: str) -> None:
    ports, reasons = yamledit.parse_ports(text)
    assert ports == [] and len(reasons) == 1 and reason in reasons[0]
