"""Forwarding names the mesh does not know to upstream resolvers (the uplink's DNS).

Rules:
- A query goes to each upstream in turn over UDP, with a fresh random id; an answer counts
  only if it comes from that upstream with that id and the same question (a truncated
  one may omit the question). A truncated
  answer (TC) is asked again over TCP of the same upstream.
- Answers are cached up to their TTL (the smallest TTL of the answer, or for a negative
  answer the SOA's minimum, capped at ``MAX_TTL``), keyed by name (case-insensitive), type
  and class; a cached answer is served with its TTLs lowered by the time it spent there.
  SERVFAIL and REFUSED are never cached.
- An upstream that fails, refuses or times out is skipped; when none answers within
  ``BUDGET`` seconds in all the pod gets SERVFAIL, promptly (glibc waits 5 s on silence).
- Names under the mesh's own domain (``cluster.local``) are never forwarded: they are the
  mesh's to answer, and leaking them says nothing useful to the internet.
"""

from __future__ import annotations

import random
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from dnslib import QTYPE, RCODE, DNSRecord

MAX_TTL = 3600
NEGATIVE_TTL = 60  # a negative answer without an SOA
BUDGET = 2.0  # seconds for every upstream together
MESH_DOMAIN = "cluster.local"


def forwardable(name: str) -> bool:
    n = name.rstrip(".").lower()
    return bool(n) and n != MESH_DOMAIN and not n.endswith("." + MESH_DOMAIN)


@dataclass
class _Entry:
    stored: float
    expires: float
    reply: DNSRecord


def _ttl(reply: DNSRecord) -> int:
    if reply.rr:
        return int(min(MAX_TTL, *(rr.ttl for rr in reply.rr)))
    for rr in reply.auth:
        if rr.rtype == QTYPE.SOA:
            return int(min(MAX_TTL, rr.ttl, rr.rdata.times[-1]))
    return NEGATIVE_TTL


class Forwarder:
    """Asks upstreams (``(ip, port)`` each) and caches their answers; thread-safe."""

    def __init__(
        self,
        upstreams: Sequence[tuple[str, int]],
        budget: float = BUDGET,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.upstreams = list(upstreams)
        self.budget = budget
        self.clock = clock
        self._cache: dict[tuple[str, int, int], _Entry] = {}
        self._lock = threading.Lock()

    def resolve(self, request: DNSRecord) -> DNSRecord:
        q = request.q
        key = (str(q.qname).lower(), int(q.qtype), int(q.qclass))
        now = self.clock()
        with self._lock:
            entry = self._cache.get(key)
        if entry is not None and entry.expires > now:
            return self._from_cache(request, entry, now)
        reply = self._ask(request)
        if reply is None:
            failed = request.reply()
            failed.header.rcode = RCODE.SERVFAIL
            return failed
        reply.header.id = request.header.id
        if reply.header.rcode in (RCODE.NOERROR, RCODE.NXDOMAIN):
            ttl = _ttl(reply)
            if ttl > 0:
                with self._lock:
                    self._cache[key] = _Entry(now, now + ttl, reply)
        return reply

    def _from_cache(self, request: DNSRecord, entry: _Entry, now: float) -> DNSRecord:
        reply = DNSRecord.parse(entry.reply.pack())
        reply.header.id = request.header.id
        aged = int(now - entry.stored)
        for rr in (*reply.rr, *reply.auth, *reply.ar):
            rr.ttl = max(0, rr.ttl - aged)
        return reply

    def _ask(self, request: DNSRecord) -> DNSRecord | None:
        deadline = self.clock() + self.budget
        query = DNSRecord.parse(request.pack())
        query.header.id = random.SystemRandom().randrange(1 << 16)
        query.header.rd = 1
        for i, (host, port) in enumerate(self.upstreams):
            left = deadline - self.clock()
            if left <= 0:
                break
            # Leave the later upstreams their share of what is left.
            timeout = left / (len(self.upstreams) - i)
            try:
                reply = self._udp(query, host, port, timeout)
                if reply is not None and reply.header.tc:
                    reply = self._tcp(query, host, port, max(0.1, deadline - self.clock()))
            except OSError:
                continue
            if reply is not None and reply.header.rcode not in (RCODE.SERVFAIL, RCODE.REFUSED):
                return reply
        return None

    def _matches(self, query: DNSRecord, data: bytes) -> DNSRecord | None:
        try:
            reply = DNSRecord.parse(data)
        except Exception:  # a malformed answer is no answer
            return None
        if reply.header.id != query.header.id:
            return None
        # A truncated answer may come without its question (dnslib's does): the id and
        # the TCP answer that follows are what count then.
        if reply.questions and reply.q != query.q:
            return None
        if not reply.questions and not reply.header.tc:
            return None
        return reply

    def _udp(self, query: DNSRecord, host: str, port: int, timeout: float) -> DNSRecord | None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        deadline = self.clock() + timeout
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.connect((host, port))  # only that upstream's datagrams are received
            s.send(query.pack())
            while (left := deadline - self.clock()) > 0:
                s.settimeout(left)
                try:
                    data = s.recv(65535)
                except TimeoutError:
                    return None
                reply = self._matches(query, data)
                if reply is not None:
                    return reply
        return None

    def _tcp(self, query: DNSRecord, host: str, port: int, timeout: float) -> DNSRecord | None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect((host, port))
            data = query.pack()
            s.sendall(struct.pack("!H", len(data)) + data)
            head = _recv_exact(s, 2)
            return self._matches(query, _recv_exact(s, struct.unpack("!H", head)[0]))


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("upstream closed the connection")
        buf += chunk
    return buf
