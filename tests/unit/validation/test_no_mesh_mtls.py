"""ISTIO_MUTUAL applies without a word: meshgate has a mesh CA (MG1082 is retired)."""

from __future__ import annotations

from tests.unit.validation.verdict import error_codes, problems


def _codes(kind: str, spec: str) -> set[str]:
    return {p.code for p in problems(kind, spec)}


def test_destination_rule_istio_mutual_is_clean_everywhere_it_is_set() -> None:
    top = "host: gw\ntrafficPolicy: {tls: {mode: ISTIO_MUTUAL}}"
    subset = "host: gw\nsubsets: [{name: a, trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}}]"
    port = (
        "host: gw\ntrafficPolicy: {portLevelSettings: "
        "[{port: {number: 80}, tls: {mode: ISTIO_MUTUAL, sni: x.com}}]}"
    )
    for spec in (top, subset, port):
        assert _codes("DestinationRule", spec) == set()


def test_gateway_istio_mutual_server_is_clean() -> None:
    spec = (
        "selector: {istio: egressgateway}\nservers: [{port: {number: 443, name: tls, protocol: "
        "HTTPS}, hosts: ['*'], tls: {mode: ISTIO_MUTUAL}}]"
    )
    assert _codes("Gateway", spec) == set()
    assert error_codes("Gateway", spec) == set()
