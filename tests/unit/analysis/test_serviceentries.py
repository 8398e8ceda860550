"""ServiceEntry addresses for TCP ports (IST0134)."""

from __future__ import annotations

from tests.unit.analysis.conftest import Run, codes

from meshgate.analysis import serviceentries


def entry(name: str, ports: str, extra: str = "") -> str:
    return f"""
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {name}}}
spec:
  hosts: [{name}.example.com]
{extra}  ports: {ports}
  resolution: DNS
"""


def test_tcp_or_unset_protocol_without_addresses(run: Run) -> None:
    text = (
        entry("tcp", "[{number: 5432, name: db, protocol: TCP}]")
        + entry("lower", "[{number: 5432, name: db, protocol: tcp}]")
        + entry("unset", "[{number: 5432, name: db}, {number: 80, name: http, protocol: HTTP}]")
    )
    found = run(text, serviceentries.addresses_required)
    assert codes(found) == [
        ("IST0134", "ServiceEntry default/lower"),
        ("IST0134", "ServiceEntry default/tcp"),
        ("IST0134", "ServiceEntry default/unset"),
    ]


def test_http_ports_or_addresses_need_nothing(run: Run) -> None:
    text = entry("http", "[{number: 80, name: http, protocol: HTTP}]") + entry(
        "addressed", "[{number: 5432, name: db, protocol: TCP}]", "  addresses: [240.0.0.1]\n"
    )
    assert run(text, serviceentries.addresses_required) == []
