"""The ADS gRPC server: one stream per proxy, config pushed on demand.

Rules:
- Both ADS flavours on one server: state of the world (`StreamAggregatedResources`,
  `session.AdsSession`) and incremental (`DeltaAggregatedResources`, `delta.DeltaSession`).
  The proxy picks one by its bootstrap's `api_type` (GRPC or DELTA_GRPC); the protocols
  live in the sans-I/O sessions, this module owns sockets, tasks and logging.
- One writer per stream: responses go through a per-stream queue drained by the RPC
  handler, so pushes and request handling never interleave writes.
- Failures stay local: a bad request, a disconnect or an exception in `generate` for one
  proxy is logged and affects only that stream; `generate` returning None means "not
  known yet": the stream stays open and the next push tries again.
- `request_push` is debounced (see debounce.py) and may be called from any thread. The
  caller asks for a push only when what a proxy would receive can have changed; this
  server never pushes on a timer of its own, so an idle mesh costs nothing. The quiet
  period is short (30 ms): the control plane asks once per reconcile pass, and a pass
  already batches every store change made while it ran (passes take longer than the
  quiet period), so a longer wait would add latency to every change and coalesce
  nothing more; a burst still ends in one push per ``max_delay`` at most, and a push
  requested while one runs waits for it (pushes never overlap).
- `generate` (translation) and packing run in one worker thread, never on the event loop,
  so the API and the xDS streams keep answering while a push is computed; one worker
  keeps `generate` single-threaded (the CA's certificate cache is not shared state to
  guard). The session's protocol state is only ever touched on the event loop.
- Counters (`counters()`) say how many pushes were requested and run, how many configs
  were generated, and how many responses and bytes went out (per mode, and in the last
  push): tests and benchmarks read them to prove that nothing happens at rest and that a
  delta push costs what changed. Each stream also counts what it was sent and keeps its
  last few responses' sizes (and, in delta, the names they carried) for proxy-status.
- `statuses()` reports the latest stream of every node id, for `meshgate proxy-status`.
  A closed stream stays listed (as DISCONNECTED, see status.py) for `retain_disconnected`
  seconds, so a proxy that restarts is not missing meanwhile, then it is dropped: a pod
  that is gone does not linger. A new stream from the same node id replaces it at once;
  when it closes while an older one of that node id is still connected, the older one is
  shown again.
- With `authenticate`, a stream is served only if the credential it sends (request
  metadata `credential_header`) proves the node id of its first request; otherwise it is
  refused (PERMISSION_DENIED) before it is registered or sent anything, so a stream posing
  as another proxy gets nothing and changes nothing of what `statuses()` shows.
- The Unix socket is made with the mode and group the caller gives (the proxies' group),
  never writable by every local user.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import logging
import os
import stat
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeAlias

import grpc
from envoy.service.discovery.v3 import ads_pb2_grpc
from envoy.service.discovery.v3.discovery_pb2 import (
    DeltaDiscoveryRequest,
    DeltaDiscoveryResponse,
    DiscoveryRequest,
    DiscoveryResponse,
)

from meshgate.translate.output import ProxyConfig
from meshgate.xds.debounce import Debouncer
from meshgate.xds.delta import DeltaSession
from meshgate.xds.resources import SHORT_NAMES, PackedConfig, Packer
from meshgate.xds.session import AdsSession, UnknownTypeError, node_metadata
from meshgate.xds.status import ProxyStatus

log = logging.getLogger(__name__)

Generate = Callable[[str, Mapping[str, Any]], ProxyConfig | None]
# (node id, the credential the stream sent or None) -> whether it may be served
Authenticate = Callable[[str, str | None], bool]

_END = None  # queue sentinel: close the stream
RECENT_SENDS = 32  # responses remembered per stream for proxy-status POD

Request: TypeAlias = DiscoveryRequest | DeltaDiscoveryRequest
Response: TypeAlias = DiscoveryResponse | DeltaDiscoveryResponse


@dataclass(eq=False)
class _Stream:
    stream_id: int
    node_id: str
    cluster: str
    metadata: dict[str, Any]
    session: AdsSession | DeltaSession
    connected_since: datetime
    queue: asyncio.Queue[Response | None] = field(default_factory=asyncio.Queue)
    connected: bool = True
    disconnected_at: datetime | None = None
    closed_at: float | None = None  # the server's clock, for retain_disconnected
    responses_sent: int = 0
    bytes_sent: int = 0
    recent: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=RECENT_SENDS))

    def sent(self, response: Response, size: int) -> None:
        """Count a response written to the proxy, and remember what it carried."""
        self.responses_sent += 1
        self.bytes_sent += size
        record: dict[str, Any] = {
            "nonce": response.nonce,
            "type": SHORT_NAMES.get(response.type_url, response.type_url),
            "bytes": size,
            "resourceCount": len(response.resources),
        }
        if isinstance(response, DeltaDiscoveryResponse):
            record["resources"] = [r.name for r in response.resources]
            record["removed"] = list(response.removed_resources)
        self.recent.append(record)

    def status(self, names: bool = True) -> ProxyStatus:
        return ProxyStatus(
            node_id=self.node_id,
            cluster=self.cluster,
            metadata=dict(self.metadata),
            connected=self.connected,
            connected_since=self.connected_since,
            disconnected_at=self.disconnected_at,
            types=self.session.type_statuses(names),
            mode=self.session.mode,
            responses_sent=self.responses_sent,
            bytes_sent=self.bytes_sent,
            recent_sends=tuple(self.recent) if names else None,
        )


class XdsServer:
    """Aggregated Discovery Service over gRPC (Unix socket or TCP)."""

    def __init__(
        self,
        generate: Generate,
        *,
        debounce: float = 0.03,
        max_delay: float = 1.0,
        control_plane_id: str = "meshgate",
        retain_disconnected: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        authenticate: Authenticate | None = None,
        credential_header: str = "x-meshgate-proxy-token",
        services: Sequence[Callable[[grpc.aio.Server], None]] = (),
    ) -> None:
        # Other gRPC services proxies reach on the same socket (the access-log service).
        self._services = tuple(services)
        self._generate = generate
        self._authenticate = authenticate
        self._credential_header = credential_header
        self._retain_disconnected = retain_disconnected
        self._clock = clock
        self._control_plane_id = control_plane_id
        self._debouncer = Debouncer(self._push_all, quiet=debounce, max_delay=max_delay)
        self._servers: list[grpc.aio.Server] = []
        self._streams: set[_Stream] = set()
        self._latest: dict[str, _Stream] = {}
        self._ids = itertools.count(1)
        self._push_count = 0
        self._push_requests = 0
        self._generations = 0
        self._responses = 0
        self._bytes_sent = 0
        self._bytes_by_mode = {"sotw": 0, "delta": 0}
        # What the last push handed the proxies (responses and their bytes, all proxies).
        self._last_push = (0, 0)
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="xds-generate"
        )

    # -- lifecycle -----------------------------------------------------------------

    async def start(self, uds_path: str, mode: int = 0o600, gid: int | None = None) -> None:
        """Listen on a Unix socket with `mode`, group `gid` (the proxies' own, as Envoy runs
        as another uid than the control plane)."""
        if len(os.fsencode(uds_path)) > 107:
            raise ValueError(f"socket path too long for AF_UNIX: {uds_path}")
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(os.lstat(uds_path).st_mode):
                os.unlink(uds_path)  # left behind by a previous run of ours
        server = self._new_server()
        server.add_insecure_port(f"unix:{uds_path}")
        await self._start_server(server)
        if gid is not None:
            os.chown(uds_path, -1, gid)
        os.chmod(uds_path, mode)

    async def start_tcp(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        credentials: grpc.ServerCredentials | None = None,
    ) -> int:
        """Listen on TCP (plain, or TLS/mTLS with `credentials`); returns the bound port."""
        server = self._new_server()
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if credentials is None:
            bound = server.add_insecure_port(address)
        else:
            bound = server.add_secure_port(address, credentials)
        await self._start_server(server)
        return int(bound)

    async def stop(self, grace: float = 0.2) -> None:
        """Stop listening and end every stream (proxies keep their config and retry)."""
        await self._debouncer.stop()
        self._executor.shutdown(wait=False, cancel_futures=True)
        for stream in list(self._streams):
            stream.queue.put_nowait(_END)
        servers, self._servers = self._servers, []
        for server in servers:
            await server.stop(grace)

    # -- pushes and status ---------------------------------------------------------

    def request_push(self, reason: str = "") -> None:
        """Regenerate every connected proxy's config soon (debounced); any thread."""
        self._push_requests += 1
        self._debouncer.trigger(reason)

    async def push_now(self, reason: str = "") -> None:
        """Regenerate and send at once, skipping the debounce (tests, shutdown paths)."""
        await self._push_all([reason] if reason else [])

    @property
    def push_count(self) -> int:
        """How many pushes ran since construction."""
        return self._push_count

    def counters(self) -> dict[str, int]:
        """Work done since construction (see the module rules)."""
        return {
            "pushRequests": self._push_requests,
            "pushes": self._push_count,
            "generations": self._generations,
            "responses": self._responses,
            "bytesSent": self._bytes_sent,
            "bytesSentSotw": self._bytes_by_mode["sotw"],
            "bytesSentDelta": self._bytes_by_mode["delta"],
            "lastPushResponses": self._last_push[0],
            "lastPushBytes": self._last_push[1],
        }

    def statuses(self, names: bool = True) -> list[ProxyStatus]:
        """The latest stream of every node id, sorted by node id (closed ones for a while);
        subscribed names only with ``names``."""
        self._drop_expired()
        return [self._latest[node].status(names) for node in sorted(self._latest)]

    def closed(self) -> list[tuple[str, dict[str, Any]]]:
        """(node id, metadata) of every listed proxy whose stream has closed: what
        forgetting gone proxies needs, without building every proxy's status."""
        self._drop_expired()
        return [(n, s.metadata) for n, s in sorted(self._latest.items()) if not s.connected]

    def acked_resources(self, node_id: str) -> dict[str, tuple[Any, ...]] | None:
        """Per type URL, the packed resources the latest stream of ``node_id`` ACKed (what
        that Envoy runs); None when no stream of that node is known."""
        stream = self._latest.get(node_id)
        return None if stream is None else stream.session.acked_resources()

    def forget(self, node_id: str) -> None:
        """Drop a disconnected proxy from statuses() (its pod is gone for good)."""
        stream = self._latest.get(node_id)
        if stream is not None and not stream.connected:
            del self._latest[node_id]

    # -- internals -----------------------------------------------------------------

    def _drop_expired(self) -> None:
        now = self._clock()
        expired = [
            node
            for node, stream in self._latest.items()
            if stream.closed_at is not None and now - stream.closed_at >= self._retain_disconnected
        ]
        for node in expired:
            del self._latest[node]

    def _new_server(self) -> grpc.aio.Server:
        server = grpc.aio.server(
            options=[
                ("grpc.max_send_message_length", 64 * 1024 * 1024),
                ("grpc.max_receive_message_length", 16 * 1024 * 1024),
                # Notice dead proxies (and let proxies notice us) without traffic.
                ("grpc.keepalive_time_ms", 30_000),
                ("grpc.keepalive_timeout_ms", 10_000),
                ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
                ("grpc.keepalive_permit_without_calls", 1),
            ]
        )
        ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(_Servicer(self), server)
        for add in self._services:
            add(server)
        return server

    async def _start_server(self, server: grpc.aio.Server) -> None:
        await server.start()
        self._servers.append(server)
        self._debouncer.start()

    async def _push_all(self, reasons: list[str]) -> None:
        self._push_count += 1
        if reasons:
            log.debug("xDS push %d: %s", self._push_count, "; ".join(reasons))
        streams = [s for s in self._streams if s.connected]
        if not streams:
            return
        loop = asyncio.get_running_loop()
        configs = await loop.run_in_executor(self._executor, self._generate_many, streams)
        count = size = 0
        for stream, config in zip(streams, configs, strict=True):
            if config is not None and stream.connected:
                responses = self._adopt(stream, config)
                count += len(responses)
                size += sum(r.ByteSize() for r in responses)
        self._last_push = (count, size)

    def _adopt(self, stream: _Stream, config: PackedConfig) -> list[Response]:
        """Hand a stream its new config (on the event loop: the session is loop-only)."""
        try:
            responses: list[Response] = list(stream.session.set_config(config))
        except Exception:
            log.exception("xDS: rendering config for %s failed", stream.node_id)
            return []
        for response in responses:
            stream.queue.put_nowait(response)
        return responses

    def _generate_many(self, streams: list[_Stream]) -> list[PackedConfig | None]:
        """In the worker: every stream's config, packed. One packer for the whole push, so
        a resource that several proxies share (the same message object) is packed once."""
        packer = Packer()
        return [self._safe_generate(stream, packer) for stream in streams]

    def _safe_generate(self, stream: _Stream, packer: Packer) -> PackedConfig | None:
        self._generations += 1
        try:
            config = self._generate(stream.node_id, stream.metadata)
            return None if config is None else packer.pack_config(config)
        except Exception:
            log.exception("xDS: generate failed for %s; keeping its last config", stream.node_id)
            return None

    async def _serve(
        self,
        requests: AsyncIterator[Request],
        context: grpc.aio.ServicerContext,
        delta: bool = False,
    ) -> None:
        stream_id = next(self._ids)
        holder: dict[str, Any] = {}
        first_seen = asyncio.Event()
        sent = {k.lower(): v for k, v in (context.invocation_metadata() or ())}
        presented = sent.get(self._credential_header)
        reader = asyncio.create_task(
            self._read(stream_id, requests, holder, first_seen, str(presented or "") or None, delta)
        )
        try:
            await first_seen.wait()
            stream = holder.get("stream")
            if stream is None:
                await reader
                if (node := holder.get("denied")) is not None:
                    await context.abort(
                        grpc.StatusCode.PERMISSION_DENIED,
                        f"no valid proxy credential for node {node!r}",
                    )
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "first request lacks node.id")
                return
            while True:
                response = await stream.queue.get()
                if response is _END:
                    break
                await context.write(response)
                size = response.ByteSize()
                self._responses += 1
                self._bytes_sent += size
                self._bytes_by_mode[stream.session.mode] += size
                stream.sent(response, size)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
            stream_or_none = holder.get("stream")
            if stream_or_none is not None:
                self._disconnected(stream_or_none)

    async def _read(
        self,
        stream_id: int,
        requests: AsyncIterator[Request],
        holder: dict[str, Any],
        first_seen: asyncio.Event,
        presented: str | None = None,
        delta: bool = False,
    ) -> None:
        stream: _Stream | None = None
        try:
            async for request in requests:
                if stream is None:
                    if not self._allowed(stream_id, request, presented, holder):
                        first_seen.set()
                        return
                    stream = self._connected(stream_id, request, delta)
                    if stream is not None:
                        holder["stream"] = stream
                    first_seen.set()
                    if stream is None:
                        return
                if not stream.session.has_config:
                    await self._first_config(stream)
                self._handle(stream, request)
        except (asyncio.CancelledError, grpc.aio.AioRpcError):
            pass
        except Exception:
            log.exception("xDS: stream %d read failed", stream_id)
        finally:
            first_seen.set()
            if stream is not None:
                stream.queue.put_nowait(_END)

    def _allowed(
        self,
        stream_id: int,
        request: Request,
        presented: str | None,
        holder: dict[str, Any],
    ) -> bool:
        if self._authenticate is None or not request.node.id:
            return True
        if self._authenticate(request.node.id, presented):
            return True
        log.warning(
            "xDS: stream %d refused: no valid credential for node %s", stream_id, request.node.id
        )
        holder["denied"] = request.node.id  # to word the refusal; never registered
        return False

    def _connected(self, stream_id: int, request: Request, delta: bool) -> _Stream | None:
        node_id = request.node.id
        if not node_id:
            log.warning("xDS: stream %d sent no node.id; closing it", stream_id)
            return None
        try:
            metadata = node_metadata(request)
        except Exception:
            log.warning("xDS: unreadable metadata from %s; using none", node_id)
            metadata = {}
        stream = _Stream(
            stream_id=stream_id,
            node_id=node_id,
            cluster=request.node.cluster,
            metadata=metadata,
            session=(DeltaSession if delta else AdsSession)(f"{stream_id}", self._control_plane_id),
            connected_since=datetime.now(UTC),
        )
        self._streams.add(stream)
        self._latest[node_id] = stream
        log.info("xDS: %s connected (stream %d, %s)", node_id, stream_id, stream.session.mode)
        return stream

    def _disconnected(self, stream: _Stream) -> None:
        self._streams.discard(stream)
        stream.connected = False
        stream.disconnected_at = datetime.now(UTC)
        stream.closed_at = self._clock()
        if self._latest.get(stream.node_id) is stream:
            # An older stream of the same node may still be up: it is the proxy's now.
            live = [s for s in self._streams if s.node_id == stream.node_id]
            if live:
                self._latest[stream.node_id] = max(live, key=lambda s: s.stream_id)
        log.info("xDS: %s disconnected (stream %d)", stream.node_id, stream.stream_id)

    async def _first_config(self, stream: _Stream) -> None:
        """A new stream's config, made in the worker (a push may have given it one since)."""
        loop = asyncio.get_running_loop()
        configs = await loop.run_in_executor(self._executor, self._generate_many, [stream])
        if configs[0] is not None and not stream.session.has_config:
            self._adopt(stream, configs[0])

    def _handle(self, stream: _Stream, request: Request) -> None:
        try:
            responses: list[Response]
            if isinstance(stream.session, DeltaSession):
                assert isinstance(request, DeltaDiscoveryRequest)
                responses = list(stream.session.handle_request(request))
            else:
                assert isinstance(request, DiscoveryRequest)
                responses = list(stream.session.handle_request(request))
        except UnknownTypeError as exc:
            log.warning("xDS: %s: %s; ignored", stream.node_id, exc)
            return
        except Exception:
            log.exception("xDS: %s: request handling failed; ignored", stream.node_id)
            return
        if request.HasField("error_detail") and request.response_nonce:
            log.warning(
                "xDS: %s rejected %s: %s",
                stream.node_id,
                request.type_url.rsplit(".", 1)[-1],
                request.error_detail.message,
            )
        for response in responses:
            stream.queue.put_nowait(response)


class _Servicer(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):  # type: ignore[misc]
    def __init__(self, owner: XdsServer) -> None:
        self._owner = owner

    async def StreamAggregatedResources(
        self, request_iterator: AsyncIterator[DiscoveryRequest], context: grpc.aio.ServicerContext
    ) -> None:
        await self._owner._serve(request_iterator, context)

    async def DeltaAggregatedResources(
        self,
        request_iterator: AsyncIterator[DeltaDiscoveryRequest],
        context: grpc.aio.ServicerContext,
    ) -> None:
        await self._owner._serve(request_iterator, context, delta=True)
