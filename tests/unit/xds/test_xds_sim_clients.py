"""The benchmarks' simulated xDS clients (benchmarks/xds_clients.py) against the real ADS
server: they subscribe to what their clusters and listeners name, follow changes, ACK
everything (the server shows them SYNCED), and a delta client that reconnects to a
restarted server lists what it holds and is sent nothing it already has.

Rules: loopback TCP, each test owns its event loop and stops its server and clients in
`finally`; waits poll until a deadline, no assertion is about how long anything took.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from benchmarks.xds_clients import Identity, SimClient, with_ip
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.core.v3.address_pb2 import Address, SocketAddress
from envoy.config.endpoint.v3.endpoint_components_pb2 import LbEndpoint
from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment
from envoy.config.listener.v3.listener_pb2 import Listener
from envoy.config.route.v3.route_pb2 import RouteConfiguration
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2, tls_pb2

from meshgate.translate.output import CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET, ProxyConfig
from meshgate.xds.server import XdsServer
from meshgate.xds.status import SyncState

WAIT = 10.0
NODE = "sidecar~10.0.0.9~sleep-1.default~default.svc.cluster.local"


def cluster(host: str) -> Cluster:
    c = Cluster(name=f"outbound|80||{host}", type=Cluster.EDS)
    c.eds_cluster_config.eds_config.ads.SetInParent()
    tls = tls_pb2.UpstreamTlsContext()
    tls.common_tls_context.tls_certificate_sds_secret_configs.add(name="default")
    c.transport_socket.name = "tls"
    c.transport_socket.typed_config.Pack(tls)
    return c


def config(hosts: Mapping[str, str]) -> ProxyConfig:
    hcm = hcm_pb2.HttpConnectionManager(stat_prefix="80")
    hcm.rds.route_config_name = "80"
    listener = Listener(name="0.0.0.0_80")
    listener.filter_chains.add().filters.add(name="hcm").typed_config.Pack(hcm)
    endpoints = [
        ClusterLoadAssignment(
            cluster_name=f"outbound|80||{h}",
            endpoints=[
                {
                    "lb_endpoints": [
                        LbEndpoint(
                            endpoint={
                                "address": Address(
                                    socket_address=SocketAddress(address=ip, port_value=80)
                                )
                            }
                        )
                    ]
                }
            ],
        )
        for h, ip in sorted(hosts.items())
    ]
    return ProxyConfig(
        listeners=[listener],
        routes=[RouteConfiguration(name="80")],
        clusters=[cluster(h) for h in sorted(hosts)],
        endpoints=endpoints,
        secrets=[secret_pb2.Secret(name="default")],
    )


class Generator:
    def __init__(self) -> None:
        self.hosts = {"a.example": "10.1.0.1", "b.example": "10.1.0.2"}

    def __call__(self, node_id: str, metadata: Mapping[str, Any]) -> ProxyConfig:
        return config(self.hosts)


async def eventually(check: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + WAIT
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)
    return value


def synced(server: XdsServer, node: str) -> bool:
    st = next((s for s in server.statuses() if s.node_id == node and s.connected), None)
    return (
        st is not None
        and len(st.types) == 5
        and all(t.state == SyncState.SYNCED for t in st.types.values())
    )


@pytest.mark.parametrize("mode", ["sotw", "delta"])
def test_clients_subscribe_follow_changes_and_ack(mode: str) -> None:
    async def main() -> None:
        gen = Generator()
        server = XdsServer(gen, debounce=0.02, max_delay=0.2)
        port = await server.start_tcp()
        node = with_ip(NODE, "10.255.0.1")
        client = SimClient(f"127.0.0.1:{port}", Identity(node, "sleep.default", {"A": "b"}), mode)
        task = asyncio.create_task(client.run())
        try:
            await eventually(lambda: client.ready and synced(server, node), "SYNCED")
            assert server.statuses()[0].metadata == {"A": "b"}
            names = {url: sorted(t.names) for url, t in client.types.items() if t.names}
            assert names == {
                ENDPOINT: ["outbound|80||a.example", "outbound|80||b.example"],
                ROUTE: ["80"],
                SECRET: ["default"],
            }
            # A new host: its endpoints are subscribed to and arrive, ACKed.
            gen.hosts = {"a.example": "10.1.0.1", "c.example": "10.1.0.3"}
            server.request_push("test")
            name = "outbound|80||c.example"
            await eventually(lambda: client.acked_at(ENDPOINT, name, b"10.1.0.3"), "c's CLA")
            await eventually(lambda: synced(server, node), "SYNCED again")
            assert sorted(client.types[ENDPOINT].names) == [
                "outbound|80||a.example",
                "outbound|80||c.example",
            ]
            assert "outbound|80||b.example" not in client.types[ENDPOINT].held
            assert sorted(client.types[CLUSTER].held) == [
                "outbound|80||a.example",
                "outbound|80||c.example",
            ]
            assert client.types[LISTENER].responses >= 1 and client.error is None
        finally:
            client.stop()
            await asyncio.gather(task, return_exceptions=True)
            await server.stop()

    asyncio.run(main())


def test_a_delta_client_resumes_after_a_server_restart_without_resend() -> None:
    async def main() -> None:
        gen = Generator()
        server = XdsServer(gen, debounce=0.02, max_delay=0.2)
        port = await server.start_tcp()
        client = SimClient(f"127.0.0.1:{port}", Identity(NODE, "sleep.default", {}), "delta")
        task = asyncio.create_task(client.run())
        try:
            await eventually(lambda: client.ready and synced(server, NODE), "SYNCED")
            held = client.held_versions()
            await server.stop()
            # A new server on the same port (a restarted control plane); the client
            # reconnects with what it holds.
            server = XdsServer(gen, debounce=0.02, max_delay=0.2)
            await server.start_tcp(port=port)
            await eventually(lambda: client.streams == 2 and synced(server, NODE), "resumed")
            (st,) = server.statuses()
            assert st.recent_sends and all(s["resources"] == [] for s in st.recent_sends)
            assert client.held_versions() == held
        finally:
            client.stop()
            await asyncio.gather(task, return_exceptions=True)
            await server.stop()

    asyncio.run(main())
