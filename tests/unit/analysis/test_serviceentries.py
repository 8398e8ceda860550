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


def test_message_text_and_line_are_istios(run: Run) -> None:
    found = run(
        entry("tcp", "[{number: 5432, name: db, protocol: TCP}]"), serviceentries.addresses_required
    )
    assert [str(m).split(") ", 1)[1] for m in found] == [
        "ServiceEntry addresses are required for this protocol."
    ]
    assert found[0].level.value == "Warning" and found[0].line == 8  # the port


def test_one_message_per_tcp_port(run: Run) -> None:
    ports = "\n  - {number: 5432, name: db, protocol: TCP}\n  - {number: 6379, name: redis}"
    found = run(entry("two", ports), serviceentries.addresses_required)
    assert [(m.type.code, m.line) for m in found] == [("IST0134", 9), ("IST0134", 10)]


def test_empty_addresses_count_as_none_and_allocated_ones_as_given(run: Run) -> None:
    # Istio's protobuf reads `addresses: []` as no addresses at all.
    empty = entry("empty", "[{number: 5432, name: db, protocol: TCP}]", "  addresses: []\n")
    assert codes(run(empty, serviceentries.addresses_required)) == [
        ("IST0134", "ServiceEntry default/empty")
    ]
    # Addresses an IP allocator wrote into the status count (Istio's autoallocate controller).
    allocated = entry("allocated", "[{number: 22, name: tcp, protocol: TCP}]") + (
        "status:\n  addresses: [{host: allocated.example.com, value: 240.240.0.1}]\n"
    )
    assert run(allocated, serviceentries.addresses_required) == []
    # TLS, HTTPS, GRPC ports are told apart by SNI or host: nothing to say, whatever the
    # resolution or location.
    others = entry(
        "tls",
        "[{number: 443, name: tls, protocol: TLS}, {number: 8443, name: https, protocol: HTTPS}]",
        "  location: MESH_INTERNAL\n",
    )
    assert run(others, serviceentries.addresses_required) == []
