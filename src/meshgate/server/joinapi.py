"""The control plane's HTTPS endpoint for nodes: joining, and the node agents' API.

Rules:
- One TLS listener on TCP (``127.0.0.1``, the port kept in ``<home>/join-port`` so the
  URL a token was printed with stays good across restarts). Its serving certificate is
  issued by the mesh CA (SAN 127.0.0.1 and ``meshgate-join``); the client certificate
  is optional at the TLS layer and required by every ``/node/`` route.
- ``GET /join/v1/ca``: the mesh CA, unauthenticated. A joining node checks it against
  the pin it was given (kubeadm's ``--discovery-token-ca-cert-hash``) before it trusts
  anything else from here.
- ``POST /join/v1/nodes``: a bootstrap token, a node name and two CSRs (the agent's, the
  proxies' xDS client). A token that is malformed, unknown, wrong or expired is refused
  (403) with the reason and nothing is written. Otherwise the CA signs both keys (they
  never travel: the node keeps its private keys, the CA key never leaves here), the
  node gets its pod range, and its Node object is written, Ready.
- ``/node/v1/*`` (mTLS: a certificate of this CA whose subject is
  ``CN=system:node:<name>, O=system:nodes``; workload certificates have no subject, so
  a proxy's identity cannot pass): ``GET pods`` the specs of the pods placed on the
  node; ``POST status`` the node's heartbeat and its pods' statuses (written only for
  pods placed on that node); ``GET config`` what the node installs besides its pods
  (DNS zone, filter and NAT rules: ``nodeconfig``); ``POST leave`` deletes the Node
  (``meshgate down`` there).
- Handlers run in the server's threads; the store is thread-safe, the specs are read
  from the reconciler's last pass, and store changes wake a pass through ``kick``.
"""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import json
import logging
import socket
import ssl
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from meshgate.api.meta import ResourceKey
from meshgate.security import bootstraptoken, pki
from meshgate.server import nodes as nodes_mod
from meshgate.server.nodeconfig import NodeConfigs
from meshgate.server.placement import without_unscheduled

if TYPE_CHECKING:
    from meshgate.security.ca import MeshCA
    from meshgate.server.reconcile import Reconciler
    from meshgate.store.base import ConfigStore

log = logging.getLogger("meshgate.join")

NODE_GROUP = "system:nodes"
NODE_CN_PREFIX = "system:node:"
NODE_CERT_LIFETIME = datetime.timedelta(days=365)
JOIN_NAME = "meshgate-join"
XDS_NAME = "meshgate-xds"
XDS_PORT = 15012  # istiod's mTLS xDS port, on the first node's bridge address
Obj = dict[str, Any]


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def serving_cert(ca: MeshCA, directory: Path, name: str, ips: list[str]) -> tuple[Path, Path]:
    """A serving certificate and key from the mesh CA, written 0600 in `directory`."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    sans: list[x509.GeneralName] = [x509.DNSName(name)]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    chain = ca.sign(
        key.public_key(), sans, now - datetime.timedelta(minutes=1), now + NODE_CERT_LIFETIME
    )
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    pki.write_file(cert_path, chain, 0o600)
    pki.write_file(key_path, pki.key_pem(key), 0o600)
    return cert_path, key_path


class JoinError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class NodeService:
    """What the handlers do; free of HTTP, so it is testable without a socket."""

    def __init__(
        self,
        store: ConfigStore,
        ca: MeshCA,
        reconciler: Reconciler,
        kick: Callable[[], None],
        first_node_netns: str,
    ) -> None:
        self.store = store
        self.ca = ca
        self.reconciler = reconciler
        self.kick = kick
        self.first_node_netns = first_node_netns
        # Seconds without a report before a joined node is NotReady (`up
        # --node-monitor-grace-period`, Kubernetes' node monitor grace period).
        self.grace = nodes_mod.GRACE
        self._seen: dict[str, float] = {}  # node -> monotonic time of its last report
        self._looked_at = -1  # the store revision check_heartbeats last listed at
        self._lock = threading.Lock()
        self._configs: NodeConfigs | None = None  # made on first use (the reconciler's home)

    def join(self, body: Obj) -> Obj:
        token = str(body.get("token") or "")
        try:
            token_id, _ = bootstraptoken.split(token)
            stored = self.store.get(
                ResourceKey(
                    "", "Secret", bootstraptoken.NAMESPACE, bootstraptoken.PREFIX + token_id
                )
            )
            bootstraptoken.check(token, stored.object if stored else None, _now())
        except bootstraptoken.TokenRefused as exc:
            log.warning("join refused: %s", exc)
            raise JoinError(403, str(exc)) from None
        name = str(body.get("name") or "")
        from meshgate.validation.names import object_name_problem

        problem = object_name_problem(name) if name else "a node name is required"
        if problem:
            raise JoinError(400, f"node name {name!r}: {problem}")
        if name == nodes_mod.OWN_NODE:
            raise JoinError(409, f"node name {name!r} is the control plane's own node")
        with self._lock:
            nodes = [s.object for s in self.store.list(kind="Node")]
            existing = next((n for n in nodes if nodes_mod.name_of(n) == name), None)
            others = [n for n in nodes if nodes_mod.name_of(n) != name]
            cidr = (
                nodes_mod.pod_cidr(existing)
                if existing
                else nodes_mod.next_pod_cidr([nodes_mod.own_node(), *others])
            )
            node_cert = self._sign(body.get("nodeCSR"), name, node=True)
            proxy_cert = self._sign(body.get("proxyCSR"), name, node=False)
            labels = {str(k): str(v) for k, v in (body.get("labels") or {}).items()}
            obj = nodes_mod.node_object(
                name, cidr, nodes_mod.gateway_ip(cidr), ready=True, labels=labels
            )
            self.store.apply([{k: v for k, v in obj.items() if k != "status"}])
            self.store.update_status(ResourceKey("", "Node", "", name), obj["status"])
            self._seen[name] = time.monotonic()
        log.info("node %s joined (pod range %s) with bootstrap token %s", name, cidr, token_id)
        self.kick()
        link = nodes_mod.link_for(cidr)
        return {
            "name": name,
            "podCIDR": cidr,
            "nodeCert": node_cert,
            "proxyCert": proxy_cert,
            "ca": self.ca.trust_bundle().decode(),
            "firstNodeNetns": self.first_node_netns,
            "firstNodeCIDR": nodes_mod.OWN_POD_CIDR,
            "link": {"first": link.first_ip, "node": link.node_ip, "prefixLen": link.prefix_len},
            "xds": {"address": f"{nodes_mod.OWN_NODE_IP}:{XDS_PORT}", "serverName": XDS_NAME},
            "dns": nodes_mod.OWN_NODE_IP,
        }

    def _sign(self, csr_pem: Any, name: str, *, node: bool) -> str:
        try:
            csr = x509.load_pem_x509_csr(str(csr_pem or "").encode())
        except ValueError:
            raise JoinError(400, "a PEM certificate signing request is required") from None
        if not csr.is_signature_valid:
            raise JoinError(400, "the certificate signing request's signature is not valid")
        key = csr.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise JoinError(400, "the certificate signing request's key must be ECDSA")
        now = _now()
        if node:
            subject = x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, NODE_GROUP),
                    x509.NameAttribute(NameOID.COMMON_NAME, NODE_CN_PREFIX + name),
                ]
            )
            sans: list[x509.GeneralName] = [x509.DNSName(name)]
        else:
            subject = None
            sans = [x509.UniformResourceIdentifier(f"spiffe://cluster.local/node/{name}/proxies")]
        return self.ca.sign(
            key, sans, now - datetime.timedelta(minutes=1), now + NODE_CERT_LIFETIME, subject
        ).decode()

    # -- tokens (the local API's /v1/tokens) ---------------------------------------------

    def create_token(self, ttl_seconds: float, description: str) -> Obj:
        token = bootstraptoken.generate()
        ttl = datetime.timedelta(seconds=ttl_seconds) if ttl_seconds > 0 else None
        secret = bootstraptoken.secret_object(token, ttl, _now(), description)
        self.store.apply([secret])
        expires = bootstraptoken.expiration(secret)
        return {"token": token, "expires": bootstraptoken.rfc3339(expires) if expires else None}

    def list_tokens(self) -> Obj:
        out = []
        for stored in self.store.list(kind="Secret", namespace=bootstraptoken.NAMESPACE):
            if stored.object.get("type") != bootstraptoken.SECRET_TYPE:
                continue
            info = bootstraptoken.describe(stored.object)
            expires = info["expires"]
            info["expires"] = bootstraptoken.rfc3339(expires) if expires else None
            out.append(info)
        return {"tokens": out}

    def delete_token(self, token_or_id: str) -> Obj:
        token_id = token_or_id.split(".", 1)[0]
        key = ResourceKey("", "Secret", bootstraptoken.NAMESPACE, bootstraptoken.PREFIX + token_id)
        stored = self.store.get(key)
        if stored is None or stored.object.get("type") != bootstraptoken.SECRET_TYPE:
            raise JoinError(404, f'bootstrap token "{token_id}" not found')
        self.store.delete([key])
        return {"deleted": token_id}

    # -- node agents --------------------------------------------------------------------

    def pods(self, node: str) -> Obj:
        self._known(node)
        if not getattr(self.reconciler, "remote_specs_ready", False):
            # Starting (or no mTLS xDS): the agent keeps what it runs and asks again.
            raise JoinError(503, "the control plane is starting; ask again")
        specs = self.reconciler.remote_specs.get(node, {})
        return {"pods": [specs[k] for k in sorted(specs)]}

    def config(self, node: str, have: str) -> Obj:
        """The node's DNS zone, filter and NAT rules (``nodeconfig``); only the version
        when the agent already has it."""
        obj = self._known(node)
        if not getattr(self.reconciler, "remote_specs_ready", False):
            raise JoinError(503, "the control plane is starting; ask again")
        if self._configs is None:
            xds = f"{nodes_mod.OWN_NODE_IP}:{XDS_PORT}"
            self._configs = NodeConfigs(Path(self.reconciler.home), self.store, xds)
        body = self._configs.config(obj, self.reconciler.snapshot)
        if have and have == body["version"]:
            return {"version": have, "unchanged": True}
        return body

    def _known(self, node: str) -> Obj:
        stored = self.store.get(ResourceKey("", "Node", "", node))
        if stored is None:
            raise JoinError(404, f'node "{node}" not found (it left, or was deleted): join again')
        return stored.object

    def status(self, node: str, body: Obj) -> Obj:
        obj = self._known(node)
        with self._lock:
            self._seen[node] = time.monotonic()
        if not nodes_mod.is_ready(obj):
            status = nodes_mod.ready_status(
                nodes_mod.gateway_ip(nodes_mod.pod_cidr(obj)),
                True,
                "meshgate node agent is posting ready status",
            )
            self.store.update_status(ResourceKey("", "Node", "", node), status)
        written = 0
        for ref, status in (body.get("pods") or {}).items():
            namespace, _, name = str(ref).partition("/")
            key = ResourceKey("", "Pod", namespace, name)
            stored = self.store.get(key)
            if stored is None or (stored.object.get("spec") or {}).get("nodeName") != node:
                continue  # gone, or not this node's: never written from here
            old = without_unscheduled(dict(stored.object.get("status") or {}))
            merged = {**old, **status}
            for gone in ("reason", "message"):
                if gone not in status:
                    merged.pop(gone, None)
            if merged != stored.object.get("status"):
                self.store.update_status(key, merged)
                written += 1
        if written:
            self.kick()
        return {"written": written}

    def leave(self, node: str) -> Obj:
        self._known(node)
        self.store.delete([ResourceKey("", "Node", "", node)], missing_ok=True)
        with self._lock:
            self._seen.pop(node, None)
        log.info("node %s left", node)
        self.kick()
        return {"left": node}

    def check_heartbeats(self) -> None:
        """Joined nodes whose agent has not reported for GRACE seconds: NotReady. With no
        joined node heard of and the store unchanged since the last look, nothing is read."""
        revision = self.store.revision()
        with self._lock:
            if not self._seen and revision == self._looked_at:
                return
            self._looked_at = revision
        now = time.monotonic()
        for stored in self.store.list(kind="Node"):
            name = nodes_mod.name_of(stored.object)
            if name == nodes_mod.OWN_NODE or not nodes_mod.is_ready(stored.object):
                continue
            with self._lock:
                seen = self._seen.setdefault(name, now)  # after a restart: from now
            if now - seen > self.grace:
                log.warning("node %s: no report for %.0fs; NotReady", name, now - seen)
                status = nodes_mod.ready_status(
                    nodes_mod.gateway_ip(nodes_mod.pod_cidr(stored.object)),
                    False,
                    "the node agent stopped posting node status",
                )
                self.store.update_status(stored.key, status)


def _node_of(cert: dict[str, Any] | None) -> str | None:
    """The node a verified client certificate names (CN=system:node:X, O=system:nodes)."""
    if not cert:
        return None
    attrs = {k: v for rdn in cert.get("subject") or () for k, v in rdn}
    cn, org = str(attrs.get("commonName") or ""), attrs.get("organizationName")
    if org != NODE_GROUP or not cn.startswith(NODE_CN_PREFIX):
        return None
    return cn.removeprefix(NODE_CN_PREFIX) or None


class _Handler(http.server.BaseHTTPRequestHandler):
    service: NodeService
    ca_pem: bytes

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def _send(self, status: int, body: Obj) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Obj:
        length = int(self.headers.get("Content-Length") or 0)
        if length > 1 << 20:
            raise JoinError(413, "request too large")
        raw = self.rfile.read(length) if length else b"{}"
        try:
            body = json.loads(raw)
        except ValueError:
            raise JoinError(400, "the request body is not JSON") from None
        if not isinstance(body, dict):
            raise JoinError(400, "the request body is not a JSON object")
        return body

    def _node(self) -> str:
        conn = self.connection
        cert = conn.getpeercert() if isinstance(conn, ssl.SSLSocket) else None
        node = _node_of(cert)
        if node is None:
            raise JoinError(401, "a node certificate of this mesh's CA is required")
        return node

    def _route(self, method: str) -> None:
        try:
            path = self.path.split("?", 1)[0]
            if method == "GET" and path == "/join/v1/ca":
                self._send(200, {"ca": self.ca_pem.decode()})
            elif method == "POST" and path == "/join/v1/nodes":
                self._send(200, self.service.join(self._body()))
            elif method == "GET" and path == "/node/v1/pods":
                self._send(200, self.service.pods(self._node()))
            elif method == "GET" and path == "/node/v1/config":
                query = urllib.parse.parse_qs(self.path.partition("?")[2])
                have = (query.get("have") or [""])[0]
                self._send(200, self.service.config(self._node(), have))
            elif method == "POST" and path == "/node/v1/status":
                node = self._node()
                self._send(200, self.service.status(node, self._body()))
            elif method == "POST" and path == "/node/v1/leave":
                self._send(200, self.service.leave(self._node()))
            else:
                self._send(404, {"error": f"no route {method} {path}"})
        except JoinError as exc:
            self._send(exc.status, {"error": str(exc)})
        except Exception as exc:  # a handler's bug must not kill the listener
            log.exception("join API %s %s failed", method, self.path)
            self._send(500, {"error": f"internal error: {exc}"})

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")


class JoinListener:
    """The HTTPS listener (a thread per connection, as the stdlib's server has it)."""

    def __init__(self, home: Path, service: NodeService, ca: MeshCA) -> None:
        self.home = home
        self.service = service
        self.ca = ca
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> None:
        port_file = self.home / "join-port"
        wanted = int(port_file.read_text()) if port_file.exists() else 0
        cert, key = serving_cert(self.ca, self.home / "security" / "join", JOIN_NAME, ["127.0.0.1"])
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)
        bundle = self.ca.trust_bundle()
        with tempfile.NamedTemporaryFile() as fh:  # load_verify_locations wants a file
            fh.write(bundle)
            fh.flush()
            ctx.load_verify_locations(fh.name)
        ctx.verify_mode = ssl.CERT_OPTIONAL

        handler = type(
            "Handler", (_Handler,), {"service": self.service, "ca_pem": self.ca.root_pem}
        )
        try:
            server = http.server.ThreadingHTTPServer(("127.0.0.1", wanted), handler, False)
            server.allow_reuse_address = True
            server.server_bind()
        except OSError:  # the kept port is taken: another one (tokens print the new URL)
            server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler, False)
            server.server_bind()
        server.server_activate()
        server.daemon_threads = True
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
        self.port = int(server.server_address[1])
        port_file.write_text(str(self.port))
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="join-api", daemon=True)
        self._thread.start()
        log.info("node join endpoint at %s", self.url)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def listen_in_netns(netns_name: str, host: str, port: int) -> socket.socket:
    """A listening TCP socket inside network namespace `netns_name` (made by a thread
    that enters it and comes back: a socket belongs to the namespace it was made in)."""
    import ctypes
    import os

    libc = ctypes.CDLL(None, use_errno=True)
    clone_newnet = 0x40000000
    result: list[socket.socket | BaseException] = []

    def make() -> None:
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(f"/run/netns/{netns_name}", os.O_RDONLY)
        try:
            if libc.setns(target, clone_newnet) != 0:
                raise OSError(ctypes.get_errno(), f"setns into {netns_name}")
            try:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((host, port))
                sock.listen(128)
                sock.setblocking(False)
                result.append(sock)
            finally:
                if libc.setns(own, clone_newnet) != 0:
                    raise OSError(ctypes.get_errno(), "setns back")
        except BaseException as exc:
            result.append(exc)
        finally:
            os.close(own)
            os.close(target)

    t = threading.Thread(target=make, name="netns-listen")
    t.start()
    t.join()
    got = result[0]
    if isinstance(got, BaseException):
        raise got
    return got
