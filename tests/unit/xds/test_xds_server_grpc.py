"""The gRPC server with a real gRPC client: isolation between streams, robustness, pushes.

Rules: loopback TCP or a Unix socket in a temp dir; each test owns its event loop
(asyncio.run) and stops its server in `finally`; waits poll until a deadline, and no
assertion is about how long anything took.
"""

from __future__ import annotations

import asyncio
import os
import stat
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import grpc
import pytest
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.core.v3.base_pb2 import Node
from envoy.config.listener.v3.listener_pb2 import Listener
from envoy.service.discovery.v3 import ads_pb2_grpc
from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest, DiscoveryResponse
from google.protobuf.struct_pb2 import Struct
from google.rpc.status_pb2 import Status

from meshgate.translate.output import CLUSTER, LISTENER, ProxyConfig
from meshgate.xds.server import XdsServer
from meshgate.xds.status import SyncState

WAIT = 10.0


class Generator:
    def __init__(self) -> None:
        self.tag = "v1"
        self.broken: set[str] = set()
        self.unknown: set[str] = set()
        self.seen_metadata: dict[str, dict[str, Any]] = {}

    def __call__(self, node_id: str, metadata: Mapping[str, Any]) -> ProxyConfig | None:
        self.seen_metadata[node_id] = dict(metadata)
        if node_id in self.broken:
            raise RuntimeError(f"boom for {node_id}")
        if node_id in self.unknown:
            return None
        return ProxyConfig(
            listeners=[Listener(name=f"{node_id}-l", stat_prefix=self.tag)],
            clusters=[Cluster(name="c")],
        )


class Client:
    """One ADS stream, driven by hand."""

    def __init__(
        self,
        channel: grpc.aio.Channel,
        node_id: str | None,
        metadata: tuple[tuple[str, str], ...] = (),
    ) -> None:
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
        self.call = stub.StreamAggregatedResources(metadata=metadata or None)
        self.node_id = node_id
        self.first = True

    async def send(self, type_url: str, **kw: Any) -> None:
        request = DiscoveryRequest(type_url=type_url, **kw)
        if self.first and self.node_id is not None:
            metadata = Struct()
            metadata.update({"app": "sleep"})
            request.node.CopyFrom(Node(id=self.node_id, cluster="c", metadata=metadata))
        self.first = False
        await self.call.write(request)

    async def recv(self) -> DiscoveryResponse:
        response = await asyncio.wait_for(self.call.read(), WAIT)
        assert isinstance(response, DiscoveryResponse), response
        return response

    async def ack(self, response: DiscoveryResponse) -> None:
        await self.send(response.type_url, response_nonce=response.nonce,
                        version_info=response.version_info)  # fmt: skip


async def eventually(check: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + WAIT
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)
    return value


def run(body: Callable[[XdsServer, Generator, grpc.aio.Channel], Awaitable[None]]) -> None:
    async def main() -> None:
        generator = Generator()
        server = XdsServer(generator, debounce=0.02, max_delay=0.2)
        port = await server.start_tcp()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                await body(server, generator, channel)
        finally:
            await server.stop()

    asyncio.run(main())


def status_of(server: XdsServer, node: str) -> Any:
    return next((s for s in server.statuses() if s.node_id == node), None)


def test_subscribe_ack_and_status() -> None:
    async def body(server: XdsServer, gen: Generator, channel: grpc.aio.Channel) -> None:
        client = Client(channel, "n1")
        await client.send(CLUSTER)
        await client.send(LISTENER)
        cds = await client.recv()
        lds = await client.recv()
        assert (cds.type_url, lds.type_url) == (CLUSTER, LISTENER)
        assert lds.control_plane.identifier == "meshgate"
        await client.ack(cds)
        await client.ack(lds)
        await eventually(
            lambda: status_of(server, "n1").types[LISTENER].state == SyncState.SYNCED, "ACK"
        )
        status = status_of(server, "n1")
        assert status.connected
        assert status.cluster == "c"
        assert status.metadata == {"app": "sleep"}
        assert gen.seen_metadata["n1"] == {"app": "sleep"}
        assert status.to_json()["types"][LISTENER]["state"] == "SYNCED"
        client.call.cancel()

    run(body)


def test_push_sends_only_changed_types_and_is_debounced() -> None:
    async def body(server: XdsServer, gen: Generator, channel: grpc.aio.Channel) -> None:
        client = Client(channel, "n1")
        await client.send(CLUSTER)
        await client.send(LISTENER)
        await client.ack(await client.recv())
        await client.ack(await client.recv())
        before = server.push_count
        gen.tag = "v2"
        for i in range(20):
            server.request_push(f"change {i}")
        update = await client.recv()
        assert update.type_url == LISTENER
        await eventually(lambda: server.push_count > before, "a push")
        # Twenty requests in a burst coalesce (quiet period 20 ms, max delay 200 ms).
        assert server.push_count - before <= 2
        client.call.cancel()

    run(body)


def test_request_push_from_another_thread() -> None:
    async def body(server: XdsServer, gen: Generator, channel: grpc.aio.Channel) -> None:
        client = Client(channel, "n1")
        await client.send(LISTENER)
        await client.ack(await client.recv())
        gen.tag = "v3"
        thread = threading.Thread(target=server.request_push, args=("from a thread",))
        thread.start()
        thread.join()
        assert (await client.recv()).type_url == LISTENER
        client.call.cancel()

    run(body)


def test_missing_node_id_closes_only_that_stream() -> None:
    async def body(server: XdsServer, gen: Generator, channel: grpc.aio.Channel) -> None:
        bad = Client(channel, None)
        await bad.send(LISTENER)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await bad.recv()
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        good = Client(channel, "n2")
        await good.send(LISTENER)
        assert (await good.recv()).type_url == LISTENER
        good.call.cancel()

    run(body)


def test_unknown_type_is_ignored_and_stream_continues() -> None:
    async def body(server: XdsServer, gen: Generator, channel: grpc.aio.Channel) -> None:
        client = Client(channel, "n1")
        await client.send("type.googleapis.com/not.a.Type")
        await client.send(LISTENER)
        assert (await client.recv()).type_url == LISTENER
        client.call.cancel()

    run(body)


def test_generate_failure_or_unknown_affects_only_that_proxy() -> None:
    async def body(server: XdsServer, gen: Generator, channel: grpc.aio.Channel) -> None:
        gen.broken.add("broken")
        gen.unknown.add("later")
        broken, later, good = (Client(channel, n) for n in ("broken", "later", "good"))
        for client in (broken, later, good):
            await client.send(LISTENER)
        assert (await good.recv()).type_url == LISTENER
        # Streams are independent: wait until the other two requests reached the server.
        await eventually(lambda: status_of(server, "broken"), "broken to connect")
        await eventually(
            lambda: LISTENER in getattr(status_of(server, "later"), "types", {}), "later's request"
        )
        assert status_of(server, "broken").connected
        assert status_of(server, "later").types[LISTENER].state == SyncState.NOT_SENT
        gen.broken.clear()
        gen.unknown.clear()
        server.request_push("now known")
        assert (await broken.recv()).type_url == LISTENER
        assert (await later.recv()).type_url == LISTENER
        for client in (broken, later, good):
            client.call.cancel()

    run(body)


def test_nack_of_one_proxy_does_not_affect_another() -> None:
    async def body(server: XdsServer, gen: Generator, channel: grpc.aio.Channel) -> None:
        a, b = Client(channel, "a"), Client(channel, "b")
        await a.send(LISTENER)
        await b.send(LISTENER)
        ra, rb = await a.recv(), await b.recv()
        await a.send(LISTENER, response_nonce=ra.nonce, error_detail=Status(message="nope"))
        await b.ack(rb)
        await eventually(lambda: status_of(server, "a").types[LISTENER].nack_error, "NACK")
        await eventually(
            lambda: status_of(server, "b").types[LISTENER].state == SyncState.SYNCED, "ACK"
        )
        assert status_of(server, "a").types[LISTENER].state == SyncState.NACKED
        assert status_of(server, "a").types[LISTENER].nack_error == "nope"
        # Same content again: the rejected version is not resent.
        await server.push_now("no change")
        gen.tag = "fixed"
        await server.push_now("changed")
        assert (await a.recv()).version_info != ra.version_info
        a.call.cancel()
        b.call.cancel()

    run(body)


def test_disconnect_mid_stream_is_recorded_and_server_keeps_serving() -> None:
    async def body(server: XdsServer, gen: Generator, channel: grpc.aio.Channel) -> None:
        first = Client(channel, "n1")
        await first.send(LISTENER)
        await first.recv()
        first.call.cancel()
        await eventually(lambda: not status_of(server, "n1").connected, "disconnect")
        assert status_of(server, "n1").disconnected_at is not None
        server.request_push("after a disconnect")
        second = Client(channel, "n1")
        await second.send(LISTENER)
        assert (await second.recv()).type_url == LISTENER
        await eventually(lambda: status_of(server, "n1").connected, "reconnect")
        server.forget("n1")  # connected: kept
        assert status_of(server, "n1") is not None
        second.call.cancel()
        await eventually(lambda: not status_of(server, "n1").connected, "second disconnect")
        server.forget("n1")
        assert status_of(server, "n1") is None

    run(body)


def test_unix_socket_mode_group_and_restart() -> None:
    async def main() -> None:
        with tempfile.TemporaryDirectory(prefix="mg-xds-", dir="/tmp") as tmp:
            path = str(Path(tmp) / "xds.sock")
            # Owner-only by default; the caller's mode and group (the proxies') otherwise.
            for kwargs, want in (({}, 0o600), ({"mode": 0o660, "gid": os.getgid()}, 0o660)):
                server = XdsServer(Generator())
                await server.start(path, **kwargs)  # type: ignore[arg-type]
                try:
                    mode = os.stat(path).st_mode
                    assert stat.S_ISSOCK(mode)
                    assert stat.S_IMODE(mode) == want
                    assert os.stat(path).st_gid == os.getgid()
                    async with grpc.aio.insecure_channel(f"unix:{path}") as channel:
                        client = Client(channel, "n1")
                        await client.send(LISTENER)
                        assert (await client.recv()).type_url == LISTENER
                        client.call.cancel()
                finally:
                    await server.stop()

    asyncio.run(main())


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_closed_streams_are_shown_disconnected_then_dropped() -> None:
    async def main() -> None:
        clock = FakeClock()
        server = XdsServer(Generator(), retain_disconnected=30.0, clock=clock)
        port = await server.start_tcp()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                old, kept = Client(channel, "gw-old"), Client(channel, "sleep")
                for client in (old, kept):
                    await client.send(LISTENER)
                    await client.ack(await client.recv())
                await eventually(
                    lambda: status_of(server, "gw-old").types[LISTENER].state == SyncState.SYNCED,
                    "ACK",
                )
                old.call.cancel()
                await eventually(lambda: not status_of(server, "gw-old").connected, "close")
                view = status_of(server, "gw-old").to_json()
                assert view["types"][LISTENER]["state"] == "DISCONNECTED"
                assert view["types"][LISTENER]["lastState"] == "SYNCED"
                clock.now += 29.0
                assert status_of(server, "gw-old") is not None
                clock.now += 1.0
                assert status_of(server, "gw-old") is None
                # A connected proxy is never dropped, however old its stream.
                clock.now += 3600.0
                assert status_of(server, "sleep").connected
                assert [s.node_id for s in server.statuses()] == ["sleep"]

                # Same node id reconnecting replaces its closed stream at once.
                kept.call.cancel()
                await eventually(lambda: not status_of(server, "sleep").connected, "close")
                again = Client(channel, "sleep")
                await again.send(LISTENER)
                await again.recv()
                await eventually(lambda: status_of(server, "sleep").connected, "reconnect")
                assert status_of(server, "sleep").types[LISTENER].state == SyncState.STALE
                again.call.cancel()
        finally:
            await server.stop()

    asyncio.run(main())


def test_a_stream_without_the_nodes_credential_gets_nothing_and_changes_nothing() -> None:
    async def main() -> None:
        with tempfile.TemporaryDirectory(prefix="mg-xds-", dir="/tmp") as tmp:
            path = str(Path(tmp) / "xds.sock")
            server = XdsServer(
                Generator(),
                authenticate=lambda node, sent: sent == f"ok-{node}",
                credential_header="x-cred",
            )
            await server.start(path)
            try:
                async with grpc.aio.insecure_channel(f"unix:{path}") as channel:
                    good = Client(channel, "n1", metadata=(("x-cred", "ok-n1"),))
                    await good.send(LISTENER)
                    assert (await good.recv()).type_url == LISTENER
                    for sent in ((), (("x-cred", "ok-n2"),), (("x-cred", "forged"),)):
                        spoof = Client(channel, "n1", metadata=sent)
                        await spoof.send(LISTENER)
                        with pytest.raises(grpc.aio.AioRpcError) as err:
                            await spoof.recv()
                        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
                        assert "no valid proxy credential for node 'n1'" in str(err.value.details())
                    # The real n1 is still the one shown, connected.
                    (status,) = server.statuses()
                    assert status.node_id == "n1" and status.connected
                    good.call.cancel()
            finally:
                await server.stop()

    asyncio.run(main())


def test_nothing_is_generated_or_sent_without_a_push_request() -> None:
    async def body(server: XdsServer, gen: Generator, channel: grpc.aio.Channel) -> None:
        client = Client(channel, "n1")
        await client.send(CLUSTER)
        await client.send(LISTENER)
        await client.ack(await client.recv())
        await client.ack(await client.recv())
        await eventually(lambda: server.counters()["responses"] == 2, "two responses")
        settled = server.counters()
        assert settled["generations"] == 1 and settled["pushes"] == 0
        await asyncio.sleep(0.5)  # several debounce periods: the server never pushes alone
        assert server.counters() == settled
        # A request brings one push: one generation for the one stream, one response.
        gen.tag = "v2"
        server.request_push("change")
        await client.ack(await client.recv())
        await eventually(lambda: server.counters()["pushes"] == 1, "the push")
        after = server.counters()
        assert after["pushRequests"] == settled["pushRequests"] + 1
        assert after["generations"] == settled["generations"] + 1
        assert after["responses"] == settled["responses"] + 1
        assert after["bytesSent"] > settled["bytesSent"]
        client.call.cancel()

    run(body)


def test_generate_runs_off_the_event_loop() -> None:
    threads: list[str] = []

    async def body(server: XdsServer, gen: Generator, channel: grpc.aio.Channel) -> None:
        inner = gen.__call__

        def spy(node_id: str, metadata: Mapping[str, Any]) -> ProxyConfig | None:
            threads.append(threading.current_thread().name)
            return inner(node_id, metadata)

        server._generate = spy
        client = Client(channel, "n1")
        await client.send(LISTENER)
        await client.ack(await client.recv())
        server.request_push("change")
        await eventually(lambda: len(threads) >= 2, "a push")
        client.call.cancel()

    run(body)
    assert threads and all(name.startswith("xds-generate") for name in threads)


def test_delta_stream_beside_sotw_sends_only_changes_and_counts_bytes_per_mode() -> None:
    from envoy.service.discovery.v3.discovery_pb2 import (
        DeltaDiscoveryRequest,
        DeltaDiscoveryResponse,
    )

    async def body(server: XdsServer, gen: Generator, channel: grpc.aio.Channel) -> None:
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
        call = stub.DeltaAggregatedResources()
        first = DeltaDiscoveryRequest(type_url=LISTENER)
        first.node.CopyFrom(Node(id="d1", cluster="c"))
        await call.write(first)
        lds = await asyncio.wait_for(call.read(), WAIT)
        assert isinstance(lds, DeltaDiscoveryResponse)
        assert [r.name for r in lds.resources] == ["d1-l"]
        await call.write(DeltaDiscoveryRequest(type_url=LISTENER, response_nonce=lds.nonce))
        await call.write(DeltaDiscoveryRequest(type_url=CLUSTER))
        cds = await asyncio.wait_for(call.read(), WAIT)
        await call.write(DeltaDiscoveryRequest(type_url=CLUSTER, response_nonce=cds.nonce))
        sotw = Client(channel, "s1")
        await sotw.send(LISTENER)
        await sotw.ack(await sotw.recv())
        await eventually(
            lambda: status_of(server, "d1").types[CLUSTER].state == SyncState.SYNCED, "ACK"
        )
        before = server.counters()
        gen.tag = "v2"  # the listeners change, the cluster does not
        server.request_push("change")
        update = await asyncio.wait_for(call.read(), WAIT)
        assert (update.type_url, [r.name for r in update.resources]) == (LISTENER, ["d1-l"])
        await sotw.recv()
        after = await eventually(
            lambda: (
                (c := server.counters())["bytesSentDelta"] > before["bytesSentDelta"]
                and c["bytesSentSotw"] > before["bytesSentSotw"]
                and c
            ),
            "both streams' bytes counted",
        )
        assert after["lastPushResponses"] == 2 and after["lastPushBytes"] > 0
        st = status_of(server, "d1")
        assert st.mode == "delta" and status_of(server, "s1").mode == "sotw"
        detail = st.to_json()
        assert detail["mode"] == "delta" and detail["sent"]["responses"] == 3
        assert detail["recentSends"][-1]["resources"] == ["d1-l"]
        listing = next(s for s in server.statuses(names=False) if s.node_id == "d1").to_json()
        assert "recentSends" not in listing
        call.cancel()
        sotw.call.cancel()

    run(body)
