"""ISTIO_MUTUAL applies (Istio accepts it) but is never silent while meshgate has no mesh CA."""

from __future__ import annotations

from tests.unit.validation.verdict import error_codes, problems


def _warnings(kind: str, spec: str) -> set[str]:
    return {p.code for p in problems(kind, spec) if not p.is_error}


def test_destination_rule_istio_mutual_warns_everywhere_it_is_set() -> None:
    top = "host: gw\ntrafficPolicy: {tls: {mode: ISTIO_MUTUAL}}"
    subset = "host: gw\nsubsets: [{name: a, trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}}]"
    port = (
        "host: gw\ntrafficPolicy: {portLevelSettings: "
        "[{port: {number: 80}, tls: {mode: ISTIO_MUTUAL, sni: x.com}}]}"
    )
    for spec in (top, subset, port):
        assert "MG1082" in _warnings("DestinationRule", spec)
        assert error_codes("DestinationRule", spec) == set()
    assert "MG1082" not in _warnings(
        "DestinationRule", "host: gw\ntrafficPolicy: {tls: {mode: SIMPLE}}"
    )


def test_gateway_istio_mutual_server_warns() -> None:
    spec = (
        "selector: {istio: egressgateway}\nservers: [{port: {number: 443, name: tls, protocol: "
        "HTTPS}, hosts: ['*'], tls: {mode: ISTIO_MUTUAL}}]"
    )
    assert "MG1082" in _warnings("Gateway", spec)
    assert error_codes("Gateway", spec) == set()
