"""DNS forwarding (the uplink's DNS): a fake upstream on loopback, real sockets."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dnslib import QTYPE, RCODE, RR, A, DNSRecord
from dnslib.server import BaseResolver, DNSLogger, DNSServer

from meshgate.runtime import dns
from meshgate.runtime.dnsforward import Forwarder, forwardable


class Upstream(BaseResolver):  # type: ignore[misc]
    """Answers NAME with many A records (too many for 512 bytes over UDP), counts queries."""

    def __init__(self) -> None:
        self.queries: list[tuple[str, str]] = []

    def resolve(self, request: DNSRecord, handler: object) -> DNSRecord:
        proto = "tcp" if handler.protocol == "tcp" else "udp"  # type: ignore[attr-defined]
        self.queries.append((str(request.q.qname), proto))
        reply = request.reply()
        if str(request.q.qname) == "big.example.":
            for i in range(60):
                reply.add_answer(RR("big.example.", QTYPE.A, rdata=A(f"192.0.2.{i}"), ttl=100))
        elif str(request.q.qname) == "small.example.":
            reply.add_answer(RR("small.example.", QTYPE.A, rdata=A("192.0.2.7"), ttl=2))
        else:
            reply.header.rcode = RCODE.NXDOMAIN
        return reply


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def upstream() -> Iterator[tuple[Upstream, int]]:
    resolver = Upstream()
    port = _free_port()
    log = DNSLogger(log="-request,-reply,-truncated,-error", prefix=False)
    servers = [
        DNSServer(resolver, address="127.0.0.1", port=port, tcp=tcp, logger=log)
        for tcp in (False, True)
    ]
    # dnslib truncates UDP answers past 512 bytes only when told (udplen).
    servers[0].server.RequestHandlerClass.udplen = 512
    for s in servers:
        s.start_thread()
    try:
        yield resolver, port
    finally:
        servers[0].server.RequestHandlerClass.udplen = 0
        for s in servers:
            s.stop()


def ask(fwd: Forwarder, name: str) -> DNSRecord:
    return fwd.resolve(DNSRecord.question(name))


def test_forwards_and_caches_up_to_the_ttl(upstream: tuple[Upstream, int]) -> None:
    up, port = upstream
    now = [100.0]
    fwd = Forwarder([("127.0.0.1", port)], clock=lambda: now[0])
    first = ask(fwd, "small.example")
    assert [str(r.rdata) for r in first.rr] == ["192.0.2.7"]
    now[0] += 1
    cached = ask(fwd, "Small.Example")  # names are case-insensitive
    assert cached.rr[0].ttl == 1  # aged by its time in the cache
    assert len(up.queries) == 1
    now[0] += 2  # past the TTL: asked again
    ask(fwd, "small.example")
    assert len(up.queries) == 2


def test_truncated_answer_is_asked_again_over_tcp(upstream: tuple[Upstream, int]) -> None:
    up, port = upstream
    reply = ask(Forwarder([("127.0.0.1", port)]), "big.example")
    assert len(reply.rr) == 60 and not reply.header.tc
    assert up.queries == [("big.example.", "udp"), ("big.example.", "tcp")]


def test_nxdomain_passes_through(upstream: tuple[Upstream, int]) -> None:
    _, port = upstream
    assert ask(Forwarder([("127.0.0.1", port)]), "nope.example").header.rcode == RCODE.NXDOMAIN


def test_silent_upstream_gives_prompt_servfail() -> None:
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))  # receives, never answers
    try:
        fwd = Forwarder([("127.0.0.1", silent.getsockname()[1])], budget=0.5)
        start = time.monotonic()
        reply = ask(fwd, "small.example")
        assert reply.header.rcode == RCODE.SERVFAIL
        assert time.monotonic() - start < 1.5
    finally:
        silent.close()


def test_dead_upstream_is_skipped_for_the_next(upstream: tuple[Upstream, int]) -> None:
    _, port = upstream
    fwd = Forwarder([("127.0.0.1", _free_port()), ("127.0.0.1", port)], budget=2.0)
    assert [str(r.rdata) for r in ask(fwd, "small.example").rr] == ["192.0.2.7"]


def test_mesh_names_are_never_forwarded() -> None:
    assert not forwardable("sleep.default.svc.cluster.local.")
    assert not forwardable("cluster.local")
    assert forwardable("aliyun.com.")


def test_zone_names_win_and_others_are_forwarded(
    tmp_path: Path, upstream: tuple[Upstream, int]
) -> None:
    up, port = upstream
    dns.write_zone(tmp_path, {"small.example": ["198.51.100.1"]}, layer="world")
    resolver = dns.ZoneResolver(dns.zone_dir(tmp_path), Forwarder([("127.0.0.1", port)]))
    world = resolver.resolve(DNSRecord.question("small.example"), None)
    assert [str(r.rdata) for r in world.rr] == ["198.51.100.1"] and up.queries == []
    local = resolver.resolve(DNSRecord.question("x.default.svc.cluster.local"), None)
    assert local.header.rcode == RCODE.NXDOMAIN and up.queries == []
    assert resolver.resolve(DNSRecord.question("big.example"), None).rr
    # Without a forwarder, as before: NXDOMAIN for any other name.
    plain = dns.ZoneResolver(dns.zone_dir(tmp_path))
    assert plain.resolve(DNSRecord.question("big.example"), None).header.rcode == RCODE.NXDOMAIN


def test_forwarder_is_thread_safe(upstream: tuple[Upstream, int]) -> None:
    _, port = upstream
    fwd = Forwarder([("127.0.0.1", port)])
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(5):
                assert ask(fwd, "small.example").rr
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
