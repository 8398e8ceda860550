"""Simulated Envoy xDS clients: many ADS streams that subscribe and ACK as a sidecar's Envoy.

Rules of this module:
- One ``SimClient`` is one ADS stream on its own HTTP/2 connection (as one Envoy is), with
  the node a sidecar sends (id, cluster, metadata: on its first request only, Envoy's
  ``set_node_on_first_message_only``) and the sidecar's xDS credential header; state of the
  world (``StreamAggregatedResources``) or delta (``DeltaAggregatedResources``).
- It subscribes as Envoy does: CDS wildcard first; EDS for every EDS cluster's service name
  (or cluster name); LDS wildcard once the first clusters and their endpoints are in;
  RDS for every route name an HTTP connection manager fetches (``rds``); SDS for every
  secret a cluster's or listener's TLS context names. When a response changes those sets
  the subscriptions follow: in SotW a request with the whole new name list (carrying the
  type's last nonce), in delta a request subscribing/unsubscribing the difference.
- Every response is ACKed with its version and nonce, never NACKed (the client does not
  validate what Envoy would; a NACK would be a benchmark bug, not a measurement).
- Delta reconnects (after the server went away) send ``initial_resource_versions`` for
  what the client holds, as Envoy does; SotW reconnects send the last ACKed version.
- What a client holds and when it ACKed each resource is recorded (``time.monotonic``,
  CLOCK_MONOTONIC: comparable across processes on one machine), so a benchmark times
  "apply -> ACKed" on the clients' side without polling the control plane.
- Parsing is cached by resource bytes: clients given the same resources parse them once.
- ``python benchmarks/xds_clients.py`` runs a fleet of clients in its own process, driven
  by JSON lines on stdin (see ``Fleet``): the load generator then does not share the
  benchmark's interpreter.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.core.v3.base_pb2 import Node
from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment
from envoy.config.listener.v3.listener_pb2 import Listener
from envoy.config.route.v3.route_pb2 import RouteConfiguration
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2, tls_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc
from envoy.service.discovery.v3.discovery_pb2 import (
    DeltaDiscoveryRequest,
    DeltaDiscoveryResponse,
    DiscoveryRequest,
    DiscoveryResponse,
)
from google.protobuf.struct_pb2 import Struct

from meshgate.translate.output import CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET
from meshgate.translate.tls import sds_names

WILDCARD = (CLUSTER, LISTENER)
# Envoy's reconnect back-off as meshgate's bootstrap sets it (100 ms base, 1 s max).
BACKOFF = (0.1, 1.0)


@dataclass(frozen=True)
class Identity:
    """Who a client says it is: what a sidecar's bootstrap gives its Envoy."""

    node_id: str
    cluster: str
    metadata: Mapping[str, Any]
    credential: tuple[str, str] | None = None  # (header, value) sent with the stream

    def to_json(self) -> dict[str, Any]:
        return {
            "nodeId": self.node_id,
            "cluster": self.cluster,
            "metadata": dict(self.metadata),
            "credential": list(self.credential) if self.credential else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Identity:
        cred = data.get("credential")
        return cls(data["nodeId"], data["cluster"], data.get("metadata") or {},
                   (cred[0], cred[1]) if cred else None)  # fmt: skip


def with_ip(node_id: str, ip: str) -> str:
    """An Istio node id (``sidecar~IP~POD.NS~NS.svc.cluster.local``) with another IP: a
    distinct proxy that the control plane maps to the same pod (it reads the pod's IP from
    the pod, the node id's only when the pod has none)."""
    parts = node_id.split("~")
    if len(parts) != 4:
        raise ValueError(f"not an Istio node id: {node_id!r}")
    parts[1] = ip
    return "~".join(parts)


# -- what a resource makes Envoy subscribe to (cached by bytes) -------------------------

_NAMES: dict[tuple[str, bytes], str] = {}
_CLUSTER_REFS: dict[bytes, tuple[str | None, frozenset[str]]] = {}
_LISTENER_REFS: dict[bytes, tuple[frozenset[str], frozenset[str]]] = {}
_MESSAGES: dict[str, Any] = {
    CLUSTER: Cluster,
    ENDPOINT: ClusterLoadAssignment,
    LISTENER: Listener,
    ROUTE: RouteConfiguration,
    SECRET: secret_pb2.Secret,
}


def resource_name(type_url: str, value: bytes) -> str:
    """A SotW resource's name (an EDS resource is named by its cluster)."""
    key = (type_url, value)
    name = _NAMES.get(key)
    if name is None:
        msg = _MESSAGES[type_url].FromString(value)
        name = msg.cluster_name if type_url == ENDPOINT else msg.name
        _NAMES[key] = name
    return name


def _tls_names(transport_socket: Any) -> set[str]:
    packed = transport_socket.typed_config
    for cls in (tls_pb2.UpstreamTlsContext, tls_pb2.DownstreamTlsContext):
        if packed.Is(cls.DESCRIPTOR):
            ctx = cls()
            packed.Unpack(ctx)
            return set(sds_names(ctx))
    return set()


def cluster_refs(value: bytes) -> tuple[str | None, frozenset[str]]:
    """(the EDS name it fetches or None, the SDS names its TLS contexts name)."""
    hit = _CLUSTER_REFS.get(value)
    if hit is None:
        cluster = Cluster.FromString(value)
        eds = None
        if cluster.type == Cluster.EDS:
            eds = cluster.eds_cluster_config.service_name or cluster.name
        secrets: set[str] = set()
        if cluster.HasField("transport_socket"):
            secrets |= _tls_names(cluster.transport_socket)
        for match in cluster.transport_socket_matches:
            secrets |= _tls_names(match.transport_socket)
        hit = _CLUSTER_REFS[value] = (eds, frozenset(secrets))
    return hit


def listener_refs(value: bytes) -> tuple[frozenset[str], frozenset[str]]:
    """(the RDS names its HTTP connection managers fetch, the SDS names it names)."""
    hit = _LISTENER_REFS.get(value)
    if hit is None:
        listener = Listener.FromString(value)
        routes: set[str] = set()
        secrets: set[str] = set()
        chains = list(listener.filter_chains)
        if listener.HasField("default_filter_chain"):
            chains.append(listener.default_filter_chain)
        for chain in chains:
            if chain.HasField("transport_socket"):
                secrets |= _tls_names(chain.transport_socket)
            for f in chain.filters:
                if f.typed_config.Is(hcm_pb2.HttpConnectionManager.DESCRIPTOR):
                    hcm = hcm_pb2.HttpConnectionManager()
                    f.typed_config.Unpack(hcm)
                    if hcm.HasField("rds"):
                        routes.add(hcm.rds.route_config_name)
        hit = _LISTENER_REFS[value] = (frozenset(routes), frozenset(secrets))
    return hit


# -- one client ------------------------------------------------------------------------


@dataclass
class _Type:
    requested: bool = False
    names: set[str] = field(default_factory=set)  # subscribed (explicit types)
    version: str = ""  # SotW: the last ACKed version_info
    nonce: str = ""  # the last nonce received
    responses: int = 0
    held: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # name -> (version, bytes)
    acked_at: dict[str, float] = field(default_factory=dict)  # name -> when its bytes were ACKed


class SimClient:
    """One simulated Envoy: connects, subscribes, ACKs; reconnects until ``stop``."""

    def __init__(self, target: str, identity: Identity, mode: str = "delta") -> None:
        if mode not in ("sotw", "delta"):
            raise ValueError(f"mode must be sotw or delta, not {mode!r}")
        self.target = target
        self.identity = identity
        self.mode = mode
        self.types: dict[str, _Type] = {
            t: _Type() for t in (CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET)
        }
        self.responses = 0
        self.bytes = 0
        self.streams = 0  # streams opened (1 + reconnects)
        self.error: str | None = None
        self._stopped = asyncio.Event()
        self._call: Any = None
        self._first = True

    # -- state -------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """The initial fetch is done: clusters and listeners in, and every name it
        subscribed to has been answered once."""
        cds, lds = self.types[CLUSTER], self.types[LISTENER]
        if not (cds.responses and lds.responses):
            return False
        return all(t.responses for url, t in self.types.items() if url not in WILDCARD and t.names)

    def acked_at(self, type_url: str, name: str, needle: bytes) -> float | None:
        """When the client ACKed ``name`` holding bytes that contain ``needle``."""
        state = self.types[type_url]
        held = state.held.get(name)
        if held is None or needle not in held[1]:
            return None
        return state.acked_at.get(name)

    def held_versions(self) -> dict[str, dict[str, str]]:
        """Per type URL, name -> version held (delta: the resource's; SotW: the response's)."""
        return {url: {n: v for n, (v, _) in t.held.items()} for url, t in self.types.items()}

    # -- running -----------------------------------------------------------------------

    def stop(self) -> None:
        self._stopped.set()
        if self._call is not None:
            self._call.cancel()

    async def run(self) -> None:
        """Serve the stream, reconnecting (with Envoy's back-off) until stopped."""
        delay = BACKOFF[0]
        options = [
            ("grpc.use_local_subchannel_pool", 1),  # its own connection, as one Envoy
            ("grpc.max_receive_message_length", 256 * 1024 * 1024),
        ]
        while not self._stopped.is_set():
            try:
                async with grpc.aio.insecure_channel(self.target, options=options) as channel:
                    await self._serve(channel)
                delay = BACKOFF[0]
            except asyncio.CancelledError:
                if self._stopped.is_set():
                    return
                raise
            except grpc.aio.AioRpcError as exc:
                if self._stopped.is_set():
                    return
                self.error = f"{exc.code().name}: {exc.details()}"
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), delay)
            delay = min(BACKOFF[1], delay * 2)

    async def _serve(self, channel: grpc.aio.Channel) -> None:
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
        metadata = (self.identity.credential,) if self.identity.credential else None
        rpc = (
            stub.DeltaAggregatedResources
            if self.mode == "delta"
            else stub.StreamAggregatedResources
        )
        self._call = call = rpc(metadata=metadata)
        self.streams += 1
        self._first = True
        resumed = [url for url, t in self.types.items() if t.requested]
        for t in self.types.values():
            t.requested = False
        # The first request is CDS; on a reconnect every type held is asked for again.
        await self._request(CLUSTER)
        for url in resumed:
            if url != CLUSTER:
                await self._request(url)
        while True:
            response = await call.read()
            if response is grpc.aio.EOF:
                return
            self.error = None
            await self._handle(response)

    async def _write(self, request: DiscoveryRequest | DeltaDiscoveryRequest) -> None:
        if self._first:
            meta = Struct()
            meta.update(dict(self.identity.metadata))
            request.node.CopyFrom(Node(id=self.identity.node_id, cluster=self.identity.cluster,
                                       metadata=meta))  # fmt: skip
            self._first = False
        await self._call.write(request)

    async def _request(self, type_url: str) -> None:
        """Open (or re-open, on a new stream) the subscription of one type."""
        state = self.types[type_url]
        state.requested = True
        wildcard = type_url in WILDCARD
        if self.mode == "delta":
            await self._write(DeltaDiscoveryRequest(
                type_url=type_url,
                resource_names_subscribe=[] if wildcard else sorted(state.names),
                initial_resource_versions={n: v for n, (v, _) in state.held.items()},
            ))  # fmt: skip
        else:
            await self._write(DiscoveryRequest(
                type_url=type_url,
                version_info=state.version,
                resource_names=[] if wildcard else sorted(state.names),
            ))  # fmt: skip

    async def _handle(self, response: DiscoveryResponse | DeltaDiscoveryResponse) -> None:
        type_url = response.type_url
        state = self.types[type_url]
        state.responses += 1
        state.nonce = response.nonce
        self.responses += 1
        self.bytes += response.ByteSize()
        # What the response holds is taken in after the ACK is written, with no await in
        # between: a reader never sees new bytes beside an old ACK time.
        changed: list[str] = []
        if isinstance(response, DeltaDiscoveryResponse):
            await self._write(
                DeltaDiscoveryRequest(type_url=type_url, response_nonce=response.nonce)
            )
            for r in response.resources:
                value = r.resource.value
                old = state.held.get(r.name)
                if old is None or old[1] != value:
                    changed.append(r.name)
                state.held[r.name] = (r.version, value)
            for name in response.removed_resources:
                state.held.pop(name, None)
                state.acked_at.pop(name, None)
        else:
            await self._write(DiscoveryRequest(
                type_url=type_url,
                version_info=response.version_info,
                response_nonce=response.nonce,
                resource_names=[] if type_url in WILDCARD else sorted(state.names),
            ))  # fmt: skip
            fresh: dict[str, tuple[str, bytes]] = {}
            for item in response.resources:
                name = resource_name(type_url, item.value)
                old = state.held.get(name)
                if old is None or old[1] != item.value:
                    changed.append(name)
                fresh[name] = (response.version_info, item.value)
            for name in state.held.keys() - fresh.keys():
                state.acked_at.pop(name, None)
            state.held = fresh
            state.version = response.version_info
        now = time.monotonic()
        for name in changed:
            state.acked_at[name] = now
        if type_url in (CLUSTER, LISTENER):
            await self._follow_references()
        if not self.types[LISTENER].requested and (
            type_url == ENDPOINT or (type_url == CLUSTER and not self.types[ENDPOINT].names)
        ):
            await self._request(LISTENER)  # clusters warmed: Envoy's listeners come next

    async def _follow_references(self) -> None:
        """Subscribe to what the clusters and listeners held now name; drop the rest."""
        eds: set[str] = set()
        rds: set[str] = set()
        sds: set[str] = set()
        for _, value in self.types[CLUSTER].held.values():
            name, secrets = cluster_refs(value)
            if name is not None:
                eds.add(name)
            sds |= secrets
        for _, value in self.types[LISTENER].held.values():
            routes, secrets = listener_refs(value)
            rds |= routes
            sds |= secrets
        for type_url, wanted in ((ENDPOINT, eds), (ROUTE, rds), (SECRET, sds)):
            await self._subscribe(type_url, wanted)

    async def _subscribe(self, type_url: str, wanted: set[str]) -> None:
        state = self.types[type_url]
        if wanted == state.names:
            return
        added, gone = wanted - state.names, state.names - wanted
        state.names = set(wanted)
        for name in gone:  # Envoy forgets what nothing refers to any more
            state.held.pop(name, None)
            state.acked_at.pop(name, None)
        if not state.requested:
            await self._request(type_url)
        elif self.mode == "delta":
            await self._write(DeltaDiscoveryRequest(
                type_url=type_url,
                resource_names_subscribe=sorted(added),
                resource_names_unsubscribe=sorted(gone),
            ))  # fmt: skip
        else:
            await self._write(DiscoveryRequest(
                type_url=type_url,
                version_info=state.version,
                response_nonce=state.nonce,
                resource_names=sorted(state.names),
            ))  # fmt: skip


# -- a fleet in its own process -----------------------------------------------------------


async def _start(clients: list[SimClient], batch: int, timeout: float) -> list[asyncio.Task[None]]:
    """Connect the clients ``batch`` at a time, each batch once the previous one is
    ready (a fleet of Envoys scaled up, not a thundering herd)."""
    tasks: list[asyncio.Task[None]] = []
    for start in range(0, len(clients), batch):
        group = clients[start : start + batch]
        tasks += [asyncio.create_task(c.run()) for c in group]
        deadline = time.monotonic() + timeout
        while not all(c.ready for c in group) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    return tasks


async def _watch(clients: Iterable[SimClient], command: Mapping[str, Any]) -> dict[str, Any]:
    needle = command["needle"].encode()
    deadline = time.monotonic() + float(command.get("timeout", 60))
    pending = list(clients)
    times: list[float] = []
    while pending and time.monotonic() < deadline:
        left = []
        for c in pending:
            at = c.acked_at(command["type"], command["name"], needle)
            if at is None:
                left.append(c)
            else:
                times.append(at)
        pending = left
        if pending:
            await asyncio.sleep(0.005)
    return {"times": times, "missing": len(pending)}


def _stats(clients: list[SimClient]) -> dict[str, Any]:
    return {
        "clients": len(clients),
        "ready": sum(c.ready for c in clients),
        "responses": sum(c.responses for c in clients),
        "bytes": sum(c.bytes for c in clients),
        "streams": sum(c.streams for c in clients),
        "errors": sorted({c.error for c in clients if c.error})[:5],
    }


async def serve_fleet(lines: asyncio.StreamReader, out: Any) -> None:
    """Run clients as the first stdin line says ({"target", "mode", "identities",
    "batch", "timeout"}), then answer commands, one JSON object a line: {"cmd": "stats"},
    {"cmd": "watch", "type", "name", "needle", "timeout"} (the ACK times of every client
    holding ``name`` with ``needle`` in its bytes), {"cmd": "stop"}."""
    header = json.loads(await lines.readline())
    clients = [
        SimClient(header["target"], Identity.from_json(i), header["mode"])
        for i in header["identities"]
    ]
    tasks = await _start(clients, int(header.get("batch", 50)), float(header.get("timeout", 60)))

    def reply(obj: Mapping[str, Any]) -> None:
        out.write(json.dumps(obj) + "\n")
        out.flush()

    reply(_stats(clients))
    try:
        while line := await lines.readline():
            command = json.loads(line)
            if command["cmd"] == "stats":
                reply(_stats(clients))
            elif command["cmd"] == "watch":
                reply(await _watch(clients, command))
            elif command["cmd"] == "stop":
                break
            else:
                reply({"error": f"unknown command {command['cmd']!r}"})
    finally:
        for c in clients:
            c.stop()
        await asyncio.gather(*tasks, return_exceptions=True)
    reply({"stopped": len(clients)})


class Fleet:
    """A fleet of clients in a child process (``python benchmarks/xds_clients.py``),
    driven over its stdin/stdout; ``start`` returns once every client is ready (or the
    timeout passed: see ``stats()["ready"]``)."""

    def __init__(self, target: str, identities: list[Identity], mode: str) -> None:
        self.target, self.identities, self.mode = target, identities, mode
        self._proc: subprocess.Popen[str] | None = None

    def start(self, batch: int = 50, timeout: float = 120.0) -> dict[str, Any]:
        self._proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        header = {
            "target": self.target,
            "mode": self.mode,
            "identities": [i.to_json() for i in self.identities],
            "batch": batch,
            "timeout": timeout,
        }
        return self._send(header)

    def stats(self) -> dict[str, Any]:
        return self._send({"cmd": "stats"})

    def watch(self, type_url: str, name: str, needle: str, timeout: float = 60.0) -> dict[str, Any]:
        """Every client's ACK time (time.monotonic) of ``name`` holding ``needle``."""
        return self._send(
            {"cmd": "watch", "type": type_url, "name": name, "needle": needle, "timeout": timeout}
        )

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(Exception):
            assert proc.stdin is not None
            proc.stdin.write(json.dumps({"cmd": "stop"}) + "\n")
            proc.stdin.close()
            proc.wait(timeout=30)
        if proc.poll() is None:
            proc.kill()  # the child we started, by its handle
            proc.wait()

    def _send(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdout is None:
            raise RuntimeError("the fleet is not running")
        proc.stdin.write(json.dumps(obj) + "\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the client fleet exited ({proc.wait()})")
        answer: dict[str, Any] = json.loads(line)
        return answer


def sidecar_identities(
    home: Path, proxies: Sequence[Mapping[str, Any]], count: int
) -> list[Identity]:
    """``count`` identities borrowed from real sidecars (their proxy-status entries: node
    id, cluster, metadata), round robin: each the node id of a real pod with another IP
    (10.255.X.Y, see ``with_ip``) and that node id's own xDS credential, made with the
    mesh's key as the runtime makes a sidecar's (reading the key takes root)."""
    from meshgate.security import proxy_credentials

    if not proxies:
        raise ValueError("no real sidecar to borrow an identity from")
    key = proxy_credentials.key_path(home).read_bytes()
    out = []
    for k in range(count):
        real = proxies[k % len(proxies)]
        node_id = with_ip(real["nodeId"], f"10.255.{k // 256}.{k % 256}")
        cred = (proxy_credentials.HEADER, proxy_credentials.credential(key, node_id))
        out.append(Identity(node_id, real["cluster"], real.get("metadata") or {}, cred))
    return out


async def _main() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**30)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    await serve_fleet(reader, sys.stdout)


if __name__ == "__main__":
    asyncio.run(_main())
