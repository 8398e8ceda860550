"""meshgate's DNS: a tiny authoritative server for the mesh's names, and its zone files.

Rules:
- The zone is a directory of JSON files `<state_dir>/dns/<layer>.json`, each `{"name": ["ip",
  ...]}`, or `{"name": ["target.name."]}` for a CNAME (zone-file style: an absolute name
  ends in a dot; a Kubernetes ExternalName Service; a name is a CNAME or has addresses,
  never both). Layers let owners write independently: the node writes `world` (the
  simulated internet), the control plane writes `mesh` (`NAME.NS.svc.cluster.local` for
  services). The served zone is the union. Files are replaced atomically (`write_zone`),
  and the server re-reads them when the directory or a file changes (checked at most every
  200 ms, on query).
- Every query gets an answer at once, never silence: a known name gets its A (or AAAA) records
  and an empty NOERROR for other types; an unknown name gets NXDOMAIN. A CNAME is answered
  as kube-dns answers an ExternalName: the CNAME record, then the target's records when the
  zone (or, with upstreams, the upstream) has them, followed through at most 8 CNAMEs
  (a longer chain or a loop: SERVFAIL). A dropped AAAA query stalls glibc's resolver for 5 s.
- With upstreams (``--upstream``, given by the node when the mesh has an uplink), a name
  that is no zone's (neither mesh nor world) and not under ``cluster.local`` is forwarded
  (``dnsforward``): world and mesh names always win. Forwarded queries are answered in a
  thread each, so a slow upstream never holds up the mesh's own names. Without upstreams
  nothing is forwarded: unknown names get NXDOMAIN, as before.
- The server is its own process (`python -m meshgate.runtime.dns`), started detached inside the
  node namespace by `Node`; it signals readiness by creating a file once its sockets are bound.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import socket
import socketserver
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dnslib import AAAA, CNAME, QTYPE, RCODE, RR, A, DNSRecord
from dnslib.server import BaseResolver, DNSLogger, DNSServer

from meshgate.runtime.dnsforward import Forwarder, forwardable
from meshgate.runtime.uplink import split_upstream


class _UDPServer(socketserver.UDPServer):
    """Answers in the serving thread, one query after another (a lookup is a dict access;
    a thread per query only slowed bursts down), with a large receive buffer."""

    allow_reuse_address = True

    def server_bind(self) -> None:
        # As root, SO_RCVBUFFORCE passes net.core.rmem_max; otherwise the kernel caps it.
        force = getattr(socket, "SO_RCVBUFFORCE", None)
        try:
            self.socket.setsockopt(socket.SOL_SOCKET, force or socket.SO_RCVBUF, UDP_RCVBUF)
        except OSError:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RCVBUF)
        super().server_bind()


# CoreDNS's default. Envoy honours it (respect_dns_ttl), so it sets how often every DNS
# cluster of every proxy asks again: 5 s made 2 proxies x 1000 clusters a constant load.
TTL = 30
# A push that adds many DNS clusters makes every proxy resolve them at once: the default
# receive buffer (~208 KiB) overflows and c-ares waits ~5 s per dropped query.
UDP_RCVBUF = 4 << 20
RELOAD_INTERVAL = 0.2
MAX_CNAME_HOPS = 8


def zone_dir(state_dir: str | os.PathLike[str]) -> Path:
    return Path(state_dir) / "dns"


def _normalize(name: str) -> str:
    return name.strip().rstrip(".").lower()


def write_zone(
    state_dir: str | os.PathLike[str], mapping: Mapping[str, Sequence[str]], layer: str = "mesh"
) -> Path:
    """Atomically replace one layer of the zone; names are case-insensitive, IPs validated,
    a name whose one value ends in a dot is a CNAME to that name."""
    if not layer or "/" in layer or layer.startswith("."):
        raise ValueError(f"bad zone layer name {layer!r}")
    clean: dict[str, list[str]] = {}
    for name, ips in mapping.items():
        key = _normalize(name)
        if not key:
            raise ValueError("empty DNS name")
        clean.setdefault(key, [])
        targets = [_normalize(v) for v in ips if v.endswith(".")]
        if targets:
            if len(ips) != 1 or not targets[0]:
                raise ValueError(f"{key}: a CNAME has exactly one target and no addresses")
            clean[key] = [targets[0] + "."]
            continue
        for ip in ips:
            addr = str(ipaddress.ip_address(ip))
            if addr not in clean[key]:
                clean[key].append(addr)
    d = zone_dir(state_dir)
    d.mkdir(parents=True, exist_ok=True)
    target = d / f"{layer}.json"
    fd, tmp = tempfile.mkstemp(prefix=".zone-", dir=d)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(clean, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o644)
    os.replace(tmp, target)
    return target


def read_zone(directory: Path) -> dict[str, list[str]]:
    """The union of every layer in `directory` (unreadable or malformed layers are skipped)."""
    zone: dict[str, list[str]] = {}
    try:
        files = sorted(p for p in directory.iterdir() if p.suffix == ".json")
    except FileNotFoundError:
        return zone
    for p in files:
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict):
            continue
        for name, ips in data.items():
            if not isinstance(ips, list):
                continue
            entry = zone.setdefault(_normalize(str(name)), [])
            entry.extend(str(ip) for ip in ips if str(ip) not in entry)
    return zone


class _ThreadingUDPServer(socketserver.ThreadingMixIn, _UDPServer):
    """With upstreams: a forwarded query may wait on the network, so each gets a thread."""

    daemon_threads = True


class ZoneResolver(BaseResolver):  # type: ignore[misc]
    """Answers from the zone directory, reloading it when anything in it changes; other
    names go to ``forwarder`` when there is one."""

    def __init__(self, directory: Path, forwarder: Forwarder | None = None) -> None:
        self.directory = directory
        self.forwarder = forwarder
        self._lock = threading.Lock()
        self._checked = 0.0
        self._signature: tuple[Any, ...] = ()
        self._zone: dict[str, list[str]] = {}
        self._maybe_reload(force=True)

    def _stamp(self) -> tuple[Any, ...]:
        try:
            entries = sorted(os.scandir(self.directory), key=lambda e: e.name)
            dir_mtime = self.directory.stat().st_mtime_ns
        except FileNotFoundError:
            return ()
        return (dir_mtime, *((e.name, e.stat().st_mtime_ns, e.inode()) for e in entries))

    def _maybe_reload(self, force: bool = False) -> None:
        now = time.monotonic()
        with self._lock:
            if not force and now - self._checked < RELOAD_INTERVAL:
                return
            self._checked = now
            sig = self._stamp()
            if force or sig != self._signature:
                self._signature = sig
                self._zone = read_zone(self.directory)

    def lookup(self, name: str) -> list[str] | None:
        self._maybe_reload()
        return self._zone.get(_normalize(name))

    def resolve(self, request: DNSRecord, handler: Any) -> DNSRecord:
        reply = request.reply()
        qname = request.q.qname
        addrs = self.lookup(str(qname))
        if addrs is None and self.forwarder is not None and forwardable(str(qname)):
            return self.forwarder.resolve(request)
        if addrs is None:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        qtype = request.q.qtype
        owner: Any = qname  # the name the next record is for: the query, then each target
        for _ in range(MAX_CNAME_HOPS):
            if not _is_cname(addrs):
                break
            target = addrs[0]
            reply.add_answer(RR(owner, QTYPE.CNAME, rdata=CNAME(target), ttl=TTL))
            if qtype == QTYPE.CNAME:
                return reply
            owner = target
            found = self.lookup(target)
            if found is None:
                bare = target.rstrip(".")
                if self.forwarder is not None and forwardable(bare):
                    upstream = self.forwarder.resolve(DNSRecord.question(bare, QTYPE[qtype]))
                    for rr in upstream.rr:
                        reply.add_answer(rr)
                return reply  # kube-dns too answers the CNAME alone when the target is unknown
            addrs = found
        else:
            reply.header.rcode = RCODE.SERVFAIL  # a CNAME loop (or a chain too long)
            return reply
        for a in addrs:
            v6 = ":" in a
            if not v6 and qtype in (QTYPE.A, QTYPE.ANY):
                reply.add_answer(RR(owner, QTYPE.A, rdata=A(a), ttl=TTL))
            elif v6 and qtype in (QTYPE.AAAA, QTYPE.ANY):
                reply.add_answer(RR(owner, QTYPE.AAAA, rdata=AAAA(a), ttl=TTL))
        return reply


def _is_cname(values: list[str]) -> bool:
    return len(values) == 1 and values[0].endswith(".")


def serve(
    directory: Path,
    address: str,
    port: int,
    ready_file: Path | None,
    upstreams: Sequence[tuple[str, int]] = (),
) -> None:
    """Serve UDP and TCP on address:port until killed."""
    forwarder = Forwarder(upstreams) if upstreams else None
    resolver = ZoneResolver(directory, forwarder)
    udp = _ThreadingUDPServer if forwarder is not None else _UDPServer
    logger = DNSLogger(log="-request,-reply,-truncated,+error", prefix=True)
    servers = [
        DNSServer(resolver, address=address, port=port, tcp=False, logger=logger, server=udp),
        DNSServer(resolver, address=address, port=port, tcp=True, logger=logger),
    ]
    for s in servers:
        s.start_thread()
    if ready_file is not None:
        ready_file.write_text(str(os.getpid()))
    try:
        while all(s.isAlive() for s in servers):
            time.sleep(1.0)
    finally:
        for s in servers:
            with contextlib.suppress(Exception):
                s.stop()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="meshgate DNS server")
    parser.add_argument("--zone-dir", required=True, type=Path)
    parser.add_argument("--address", default="10.34.0.1")
    parser.add_argument("--port", type=int, default=53)
    parser.add_argument("--ready-file", type=Path)
    parser.add_argument(
        "--upstream", action="append", default=[], help="IP:PORT to forward other names to"
    )
    args = parser.parse_args(argv)
    upstreams = [split_upstream(u) for u in args.upstream]
    serve(args.zone_dir, args.address, args.port, args.ready_file, upstreams)


if __name__ == "__main__":
    main()
