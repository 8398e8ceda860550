"""The far side of the uplink test: an upstream HTTP server and a DNS server.

Run by tests/e2e/test_uplink.py inside a network namespace of the test's own (never the
machine's): ``uplink_far.py HTTP_IP DNS_IP NAME...``. The DNS server answers each NAME
with HTTP_IP (A, TTL 60) and NXDOMAIN for anything else; the HTTP server answers 200
with ``server: upstream-test`` and a body naming the client's address. Prints ``ready``.
"""

import http.server
import sys

from dnslib import QTYPE, RCODE, RR, A
from dnslib.server import BaseResolver, DNSLogger, DNSServer

HTTP_IP, DNS_IP, *NAMES = sys.argv[1:]


class Resolver(BaseResolver):
    def resolve(self, request, handler):
        reply = request.reply()
        if str(request.q.qname).rstrip(".").lower() in NAMES:
            if request.q.qtype == QTYPE.A:
                reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(HTTP_IP), ttl=60))
        else:
            reply.header.rcode = RCODE.NXDOMAIN
        return reply


class Handler(http.server.BaseHTTPRequestHandler):
    def _head(self, body: bytes) -> bytes:
        self.send_response(200)
        self.send_header("server", "upstream-test")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        return body

    def do_GET(self) -> None:
        self.wfile.write(self._head(f"upstream says hi to {self.client_address[0]}\n".encode()))

    def do_HEAD(self) -> None:
        self._head(b"upstream says hi\n")

    def log_message(self, *args: object) -> None:
        pass


log = DNSLogger(log="-request,-reply,-truncated,+error", prefix=False)
for tcp in (False, True):
    DNSServer(Resolver(), address=DNS_IP, port=53, tcp=tcp, logger=log).start_thread()
server = http.server.ThreadingHTTPServer((HTTP_IP, 80), Handler)
print("ready", flush=True)
server.serve_forever()
